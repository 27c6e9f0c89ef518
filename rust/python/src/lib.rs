//! `distilabel_rs._core`: the native module. Conversion and glue only; every algorithm
//! lives in `distilabel-rs-core`.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod batch_jobs;
mod client;
mod convert;
mod errors;
mod fanout;
mod generate_job;
mod grouper;
mod merge;
#[cfg(feature = "mock")]
mod mock;
mod polling;
mod task;

use pyo3::prelude::*;

#[pymodule]
mod _core {
    #[pymodule_export]
    use crate::batch_jobs::{BatchJobs, batch_journal_state, forget_batch_submissions};
    #[pymodule_export]
    use crate::client::{NativeClient, RequestsHandle};
    #[pymodule_export]
    use crate::fanout::FanOutScheduler;
    #[pymodule_export]
    use crate::generate_job::{
        GenerateJob, append_results, batch_rows_from_file, start_generate_job,
    };
    #[pymodule_export]
    use crate::grouper::Grouper;
    #[pymodule_export]
    use crate::merge::merge_responses;
    #[cfg(feature = "mock")]
    #[pymodule_export]
    use crate::mock::MockServer;
    #[pymodule_export]
    use crate::polling::wait_between_polls;

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        use crate::errors::{
            APIConnectionError, APIError, APIResponseValidationError, APIStatusError,
            APITimeoutError, MalformedInputError, RateLimitError, RequestCancelledError,
        };
        let py = m.py();
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("CLIENT_DEFAULTS", crate::client::client_defaults(py)?)?;
        m.add("APIError", py.get_type::<APIError>())?;
        m.add("APIConnectionError", py.get_type::<APIConnectionError>())?;
        m.add("APITimeoutError", py.get_type::<APITimeoutError>())?;
        m.add("APIStatusError", py.get_type::<APIStatusError>())?;
        m.add("RateLimitError", py.get_type::<RateLimitError>())?;
        m.add(
            "APIResponseValidationError",
            py.get_type::<APIResponseValidationError>(),
        )?;
        m.add(
            "RequestCancelledError",
            py.get_type::<RequestCancelledError>(),
        )?;
        m.add("MalformedInputError", py.get_type::<MalformedInputError>())?;
        Ok(())
    }
}
