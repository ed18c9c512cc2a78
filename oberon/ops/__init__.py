"""Operations: metrics, observability, the degradation controller and its admin endpoint."""
