//! Neural students on the synthetic teacher (filled in below).
