"""EchoStream scoring."""
