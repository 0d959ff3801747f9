"""FIGA (Guo et al., ICLR 2024): fine-grained quality-aware alignment from minimally revised responses."""
