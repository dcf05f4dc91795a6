"""reactor_auction: a sealed-bid auction server and client on a single-threaded
selectors reactor driving a sans-IO state machine."""

__version__ = "1.0.0"
