"""The shared record (健康档案调阅): one person across every institution, and document sharing (IHE MHD)."""
