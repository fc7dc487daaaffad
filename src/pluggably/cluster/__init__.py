"""What replicas on one PostgreSQL share beyond their tables: who is alive
(``replicas``), a message bus between them (LISTEN/NOTIFY), and the relays that let
any replica follow or cancel a request running on another."""
