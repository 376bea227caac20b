"""flashsale: a flash sale, oversold by a naive checkout and saved by events."""
__version__ = "0.1.0"
