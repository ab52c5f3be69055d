"""SM2 signatures with SM3 (GB/T 32918, GM/T 0003/0004) through the system's OpenSSL 3 ``libcrypto``.

Why this binding: ``cryptography`` does not expose SM2, pure-Python SM2 (``gmssl``) manages only a few
hundred operations per second, and the maintained native wheels for 国密 are either forks of
``cryptography`` pinned to old releases (``tongsuopy``) or young single-author builds. OpenSSL 3 ships SM2
and SM3 in its default provider and is already loaded by CPython's ``ssl``/``hashlib``; a thin ``ctypes``
binding to its EVP interface gives native speed (thousands of verifications per second per core) with no
new dependency. A deployment whose OpenSSL was built without SM2 (``no-sm2``) gets ``SM2Unavailable``.

Keys travel as raw bytes: the private scalar ``d`` (32 bytes) and the uncompressed public point
``04 || x || y`` (65 bytes). Signatures travel as raw ``r || s`` (64 bytes) and are converted to and from
the DER ``SM2Signature`` OpenSSL speaks. The SM2 distinguishing ID defaults to ``1234567812345678``
(GM/T 0009-2012), which every 国密 implementation uses unless told otherwise.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

DEFAULT_ID = b"1234567812345678"

# DER prefixes for the SM2 curve (OID 1.2.156.10197.1.301) under id-ecPublicKey.
_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200")
_SEC1_PREFIX = bytes.fromhex("30770201010420")
_SEC1_MIDDLE = bytes.fromhex("a00a06082a811ccf5501822da144034200")

#: Order n of the SM2 curve: r and s must lie in [1, n-1].
_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123


class SM2Unavailable(RuntimeError):
    """The local OpenSSL cannot do SM2/SM3 (missing ``libcrypto`` 3 or built without SM2)."""


_lib = None
_sm3 = None
_load_lock = threading.Lock()
_c_void_p = ctypes.c_void_p


def _load():
    """Load and describe ``libcrypto`` once; raise ``SM2Unavailable`` when it cannot do SM2."""
    global _lib, _sm3
    if _lib is not None:
        return _lib
    with _load_lock:
        if _lib is not None:
            return _lib
        names = ["libcrypto.so.3", ctypes.util.find_library("crypto") or "", "libcrypto.3.dylib"]
        lib = None
        for name in names:
            if not name:
                continue
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        if lib is None:
            raise SM2Unavailable("libcrypto (OpenSSL 3) not found")
        try:
            lib.OpenSSL_version_num.restype = ctypes.c_ulong
            if lib.OpenSSL_version_num() < 0x30000000:
                raise SM2Unavailable("OpenSSL 3 is required for SM2")
            sig = {
                "EVP_MD_fetch": (_c_void_p, [_c_void_p, ctypes.c_char_p, ctypes.c_char_p]),
                "EVP_MD_CTX_new": (_c_void_p, []),
                "EVP_MD_CTX_free": (None, [_c_void_p]),
                "EVP_MD_CTX_set_pkey_ctx": (None, [_c_void_p, _c_void_p]),
                "EVP_PKEY_CTX_new": (_c_void_p, [_c_void_p, _c_void_p]),
                "EVP_PKEY_CTX_new_from_name": (_c_void_p, [_c_void_p, ctypes.c_char_p, ctypes.c_char_p]),
                "EVP_PKEY_CTX_free": (None, [_c_void_p]),
                "EVP_PKEY_CTX_set1_id": (ctypes.c_int, [_c_void_p, ctypes.c_char_p, ctypes.c_int]),
                "EVP_PKEY_keygen_init": (ctypes.c_int, [_c_void_p]),
                "EVP_PKEY_generate": (ctypes.c_int, [_c_void_p, ctypes.POINTER(_c_void_p)]),
                "EVP_PKEY_free": (None, [_c_void_p]),
                "EVP_PKEY_is_a": (ctypes.c_int, [_c_void_p, ctypes.c_char_p]),
                "EVP_PKEY_get_octet_string_param": (
                    ctypes.c_int,
                    [_c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)],
                ),
                "EVP_PKEY_get_bn_param": (ctypes.c_int, [_c_void_p, ctypes.c_char_p, ctypes.POINTER(_c_void_p)]),
                "BN_bn2binpad": (ctypes.c_int, [_c_void_p, ctypes.c_char_p, ctypes.c_int]),
                "BN_clear_free": (None, [_c_void_p]),
                "d2i_PUBKEY": (_c_void_p, [_c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long]),
                "d2i_AutoPrivateKey": (_c_void_p, [_c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long]),
                "EVP_DigestSignInit": (ctypes.c_int, [_c_void_p, _c_void_p, _c_void_p, _c_void_p, _c_void_p]),
                "EVP_DigestSign": (
                    ctypes.c_int,
                    [_c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t), ctypes.c_char_p, ctypes.c_size_t],
                ),
                "EVP_DigestVerifyInit": (ctypes.c_int, [_c_void_p, _c_void_p, _c_void_p, _c_void_p, _c_void_p]),
                "EVP_DigestVerify": (
                    ctypes.c_int,
                    [_c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t],
                ),
                "ERR_clear_error": (None, []),
            }
            for name, (restype, argtypes) in sig.items():
                fn = getattr(lib, name)
                fn.restype = restype
                fn.argtypes = argtypes
        except AttributeError as exc:  # pragma: no cover - only on exotic builds
            raise SM2Unavailable(f"libcrypto lacks {exc}") from exc
        md = lib.EVP_MD_fetch(None, b"SM3", None)
        if not md:
            lib.ERR_clear_error()
            raise SM2Unavailable("OpenSSL has no SM3 digest")
        _sm3 = md
        _lib = lib
        return lib


def available() -> bool:
    """True when SM2 signatures can be made and checked here."""
    try:
        _load()
        return True
    except SM2Unavailable:
        return False


def _sig_to_der(sig: bytes) -> bytes | None:
    if len(sig) != 64:
        return None
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    if not (0 < r < _N and 0 < s < _N):
        return None
    return encode_dss_signature(r, s)


class _PKey:
    """Owns one ``EVP_PKEY*`` and frees it with the object."""

    __slots__ = ("ptr", "_lib")

    def __init__(self, ptr: int, lib):
        self.ptr = ptr
        self._lib = lib

    def __del__(self):
        if self.ptr and self._lib is not None:
            self._lib.EVP_PKEY_free(self.ptr)
            self.ptr = None


def _pkey_from_der(der: bytes, private: bool) -> _PKey:
    lib = _load()
    buf = ctypes.c_char_p(der)
    ptr = (lib.d2i_AutoPrivateKey if private else lib.d2i_PUBKEY)(None, ctypes.byref(buf), len(der))
    if not ptr:
        lib.ERR_clear_error()
        raise ValueError("not a valid SM2 key")
    key = _PKey(ptr, lib)
    if lib.EVP_PKEY_is_a(ptr, b"SM2") != 1:
        raise ValueError("key is not on the SM2 curve")
    return key


class SM2PublicKey:
    """An SM2 verification key."""

    def __init__(self, point: bytes, distinguishing_id: bytes = DEFAULT_ID):
        if len(point) != 65 or point[0] != 4:
            raise ValueError("SM2 public key must be an uncompressed 65-byte point")
        self.point = bytes(point)
        self.distinguishing_id = distinguishing_id
        self._key = _pkey_from_der(_SPKI_PREFIX + self.point, private=False)

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True when ``signature`` (raw ``r || s``) is valid for ``message`` under SM3 and the ID."""
        der = _sig_to_der(signature)
        if der is None:
            return False
        lib = _lib
        mctx = lib.EVP_MD_CTX_new()
        pctx = lib.EVP_PKEY_CTX_new(self._key.ptr, None)
        try:
            if not mctx or not pctx:
                raise MemoryError("OpenSSL context allocation failed")
            ident = self.distinguishing_id
            if lib.EVP_PKEY_CTX_set1_id(pctx, ident, len(ident)) != 1:
                raise RuntimeError("EVP_PKEY_CTX_set1_id failed")
            lib.EVP_MD_CTX_set_pkey_ctx(mctx, pctx)
            if lib.EVP_DigestVerifyInit(mctx, None, _sm3, None, self._key.ptr) != 1:
                raise RuntimeError("EVP_DigestVerifyInit failed")
            ok = lib.EVP_DigestVerify(mctx, der, len(der), message, len(message)) == 1
            if not ok:
                lib.ERR_clear_error()
            return ok
        finally:
            if mctx:
                lib.EVP_MD_CTX_free(mctx)
            if pctx:
                lib.EVP_PKEY_CTX_free(pctx)


class SM2PrivateKey:
    """An SM2 signing key (the scalar stays inside OpenSSL once loaded)."""

    def __init__(self, scalar: bytes, point: bytes, distinguishing_id: bytes = DEFAULT_ID):
        if len(scalar) != 32 or len(point) != 65:
            raise ValueError("SM2 private key needs a 32-byte scalar and a 65-byte point")
        self.distinguishing_id = distinguishing_id
        self.public_key = SM2PublicKey(point, distinguishing_id)
        der = _SEC1_PREFIX + scalar + _SEC1_MIDDLE + point
        self._key = _pkey_from_der(der, private=True)
        self._scalar = bytes(scalar)

    @classmethod
    def generate(cls, distinguishing_id: bytes = DEFAULT_ID) -> SM2PrivateKey:
        """A fresh random key from OpenSSL's CSPRNG."""
        lib = _load()
        ctx = lib.EVP_PKEY_CTX_new_from_name(None, b"SM2", None)
        if not ctx:
            lib.ERR_clear_error()
            raise SM2Unavailable("OpenSSL cannot create SM2 keys")
        out = _c_void_p()
        try:
            if lib.EVP_PKEY_keygen_init(ctx) != 1 or lib.EVP_PKEY_generate(ctx, ctypes.byref(out)) != 1:
                lib.ERR_clear_error()
                raise SM2Unavailable("SM2 key generation failed")
        finally:
            lib.EVP_PKEY_CTX_free(ctx)
        holder = _PKey(out.value, lib)
        point_buf = ctypes.create_string_buffer(65)
        n = ctypes.c_size_t()
        if lib.EVP_PKEY_get_octet_string_param(holder.ptr, b"pub", point_buf, 65, ctypes.byref(n)) != 1 or n.value != 65:
            raise SM2Unavailable("cannot read SM2 public key")
        bn = _c_void_p()
        if lib.EVP_PKEY_get_bn_param(holder.ptr, b"priv", ctypes.byref(bn)) != 1:
            raise SM2Unavailable("cannot read SM2 private key")
        scalar_buf = ctypes.create_string_buffer(32)
        try:
            if lib.BN_bn2binpad(bn, scalar_buf, 32) != 32:
                raise SM2Unavailable("cannot serialise SM2 private key")
        finally:
            lib.BN_clear_free(bn)
        return cls(scalar_buf.raw, point_buf.raw[:65], distinguishing_id)

    def private_bytes(self) -> bytes:
        """The raw 32-byte scalar ``d`` (only for encrypting it at rest)."""
        return self._scalar

    def sign(self, message: bytes) -> bytes:
        """A fresh SM2-with-SM3 signature of ``message`` as raw ``r || s`` (64 bytes)."""
        lib = _lib
        mctx = lib.EVP_MD_CTX_new()
        pctx = lib.EVP_PKEY_CTX_new(self._key.ptr, None)
        try:
            if not mctx or not pctx:
                raise MemoryError("OpenSSL context allocation failed")
            ident = self.distinguishing_id
            if lib.EVP_PKEY_CTX_set1_id(pctx, ident, len(ident)) != 1:
                raise RuntimeError("EVP_PKEY_CTX_set1_id failed")
            lib.EVP_MD_CTX_set_pkey_ctx(mctx, pctx)
            if lib.EVP_DigestSignInit(mctx, None, _sm3, None, self._key.ptr) != 1:
                raise RuntimeError("EVP_DigestSignInit failed")
            buf = ctypes.create_string_buffer(80)
            size = ctypes.c_size_t(80)
            if lib.EVP_DigestSign(mctx, buf, ctypes.byref(size), message, len(message)) != 1:
                lib.ERR_clear_error()
                raise RuntimeError("SM2 signing failed")
            r, s = decode_dss_signature(buf.raw[: size.value])
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        finally:
            if mctx:
                lib.EVP_MD_CTX_free(mctx)
            if pctx:
                lib.EVP_PKEY_CTX_free(pctx)


def spki_der(point: bytes) -> bytes:
    """SubjectPublicKeyInfo DER of an SM2 public point (for PEM export and interop tests)."""
    return _SPKI_PREFIX + point
