"""IronLB operator: reconciles the ironlb.io CRDs into IP allocations and speaker configuration."""
