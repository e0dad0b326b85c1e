//! placeholder until the cow helper lands
