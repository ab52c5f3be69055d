"""互联互通标准化成熟度测评 — interoperability and data-quality assessment, measured from what arrives."""
