"""Layer 2 mode: ARP/NDP answers for the IPs this node wins, elected among live speakers by heartbeats."""
