"""HTTP pieces every dialect may use; nothing here imports a dialect."""
