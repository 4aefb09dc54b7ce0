//! Expansion: snapshot → the desired Istio objects (DESIGN §5, EGRESS.md §2 and §6).
