"""IronLB speaker: answers ARP/NDP and speaks BGP for the Service IPs assigned to this node."""
