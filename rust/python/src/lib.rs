//! `distilabel_rs._core`: the native module. Conversion and glue only; every algorithm
//! lives in `distilabel-rs-core`.

mod chunking;
mod errors;
mod fanout;
mod grouping;

use pyo3::prelude::*;

#[pymodule]
mod _core {
    #[pymodule_export]
    use crate::chunking::Grouper;
    #[pymodule_export]
    use crate::fanout::FanOutScheduler;
    #[pymodule_export]
    use crate::grouping::merge_responses;

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
