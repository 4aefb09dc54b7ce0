//! The offline commands (`check`, `render`, `crds`) and the input loader they share.

pub mod load;
