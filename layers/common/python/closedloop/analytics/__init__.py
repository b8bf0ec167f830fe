"""The analytics side: the Parquet datasets Athena reads, and how the attribute job builds them."""
