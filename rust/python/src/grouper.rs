//! `grouper`: a lazy iterator of fixed-size tuples over any Python iterator.

use distilabel_rs_core::grouper::{Chunker, Incomplete};
use pyo3::prelude::*;
use pyo3::types::{PyIterator, PyTuple};

use crate::errors::IntoPyErr;

/// Iterator returned by `distilabel_rs.utils.itertools.grouper`.
#[pyclass(module = "distilabel_rs._core")]
pub struct Grouper {
    source: Py<PyIterator>,
    fillvalue: Py<PyAny>,
    chunker: Chunker,
}

#[pymethods]
impl Grouper {
    /// `source` must already be an iterator (the Python wrapper calls `iter()` first).
    #[new]
    #[pyo3(signature = (source, n, incomplete = "fill", fillvalue = None))]
    fn new(
        source: Bound<'_, PyAny>,
        n: isize,
        incomplete: &str,
        fillvalue: Option<Py<PyAny>>,
        py: Python<'_>,
    ) -> PyResult<Self> {
        let policy: Incomplete = incomplete.parse().map_err(IntoPyErr::into_pyerr)?;
        Ok(Self {
            source: source.cast_into::<PyIterator>()?.unbind(),
            fillvalue: fillvalue.unwrap_or_else(|| py.None()),
            // `[it] * n` with `n <= 0` is no iterators at all: nothing is yielded.
            chunker: Chunker::new(usize::try_from(n).unwrap_or(0), policy),
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let mut source = self.source.bind(py).clone();
        let chunk = self
            .chunker
            .next_chunk(
                || source.next().transpose(),
                || self.fillvalue.bind(py).clone(),
            )
            .map_err(IntoPyErr::into_pyerr)?;
        chunk.map(|items| PyTuple::new(py, items)).transpose()
    }
}
