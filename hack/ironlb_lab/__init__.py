"""The local lab: a real Kubernetes control plane (later also network namespaces) for tests and demo."""
