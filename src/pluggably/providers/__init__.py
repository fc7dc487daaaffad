"""Remote providers: one protocol, adapters speaking each vendor's wire format."""
