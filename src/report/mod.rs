//! Reports: pure functions of result files. One file per format.

pub mod table;
