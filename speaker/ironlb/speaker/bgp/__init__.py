"""BGP mode: one exabgp per node, kept in line with the published configuration and the endpoints."""
