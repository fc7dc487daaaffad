"""Local runtimes: one model's blocking library behind the protocol of base.py."""
