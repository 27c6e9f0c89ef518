//! `merge_responses` over Python `GenerateOutput` dicts.

use distilabel_rs_core::merge::{self, MergedResponse, ResponseHost};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::errors::IntoPyErr;

/// Reads responses with Python's own item access, so a malformed response raises exactly
/// the `KeyError`/`IndexError`/`TypeError` that distilabel's pure-Python merge raises.
struct PythonResponses<'py> {
    py: Python<'py>,
}

impl<'py> ResponseHost for PythonResponses<'py> {
    type Response = Bound<'py, PyAny>;
    type Key = Bound<'py, PyAny>;
    type Value = Bound<'py, PyAny>;
    type Error = PyErr;

    fn extra_keys(&self, response: &Self::Response) -> PyResult<Vec<Self::Key>> {
        let generations = intern!(self.py, "generations");
        let statistics = intern!(self.py, "statistics");
        let mut keys = Vec::new();
        for key in response
            .call_method0(intern!(self.py, "keys"))?
            .try_iter()?
        {
            let key = key?;
            if !key.eq(generations)? && !key.eq(statistics)? {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    fn first_generation(&self, response: &Self::Response) -> PyResult<Self::Value> {
        first(&item(response, intern!(self.py, "generations"))?)
    }

    fn visit_first_statistics(
        &self,
        response: &Self::Response,
        visit: &mut dyn FnMut(Self::Key, Self::Value) -> PyResult<()>,
    ) -> PyResult<()> {
        let statistics = item(response, intern!(self.py, "statistics"))?;
        if let Ok(dict) = statistics.cast_exact::<PyDict>() {
            for (key, values) in dict.iter() {
                visit(key, first(&values)?)?;
            }
            return Ok(());
        }
        for key in statistics.try_iter()? {
            let key = key?;
            let values = statistics.get_item(&key)?;
            visit(key, first(&values)?)?;
        }
        Ok(())
    }

    fn first_extra(&self, response: &Self::Response, key: &Self::Key) -> PyResult<Self::Value> {
        first(&item(response, key)?)
    }

    fn key(&self, name: &'static str) -> Self::Key {
        PyString::intern(self.py, name).into_any()
    }

    fn same_key(&self, a: &Self::Key, b: &Self::Key) -> PyResult<bool> {
        // Identity first: the common case is the same interned string.
        Ok(a.is(b) || a.eq(b)?)
    }
}

/// `container[key]`: a direct lookup for plain dicts (what `agenerate` returns), Python's
/// item access otherwise and for missing keys (so the `KeyError` is Python's own).
fn item<'py>(
    container: &Bound<'py, PyAny>,
    key: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    if let Ok(dict) = container.cast_exact::<PyDict>()
        && let Some(value) = dict.get_item(key)?
    {
        return Ok(value);
    }
    container.get_item(key)
}

/// `values[0]`: a direct read for non-empty plain lists, Python's item access otherwise (so
/// an empty list raises Python's own `IndexError`).
fn first<'py>(values: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if let Ok(list) = values.cast_exact::<PyList>()
        && !list.is_empty()
    {
        return list.get_item(0);
    }
    values.get_item(0)
}

/// Groups every `n` consecutive single-generation responses into one response per input.
///
/// One pass over `responses`; returns exactly what distilabel 1.5.3's `merge_responses`
/// returns, and raises what it raises for malformed responses.
#[pyfunction]
#[pyo3(signature = (responses, n = 1))]
pub fn merge_responses<'py>(
    py: Python<'py>,
    responses: &Bound<'py, PyAny>,
    n: i64,
) -> PyResult<Bound<'py, PyList>> {
    if !responses.is_truthy()? {
        return Ok(PyList::empty(py));
    }
    let items: Vec<Bound<'py, PyAny>> = responses.try_iter()?.collect::<PyResult<_>>()?;
    let host = PythonResponses { py };
    let merged = merge::merge_responses(&host, &items, n).map_err(IntoPyErr::into_pyerr)?;
    let out = PyList::empty(py);
    for response in merged {
        out.append(to_dict(py, response)?)?;
    }
    Ok(out)
}

fn to_dict<'py>(
    py: Python<'py>,
    merged: MergedResponse<Bound<'py, PyAny>, Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item(
        intern!(py, "generations"),
        PyList::new(py, merged.generations)?,
    )?;
    let statistics = PyDict::new(py);
    for (key, values) in merged.statistics {
        statistics.set_item(key, PyList::new(py, values)?)?;
    }
    dict.set_item(intern!(py, "statistics"), statistics)?;
    for (key, values) in merged.extras {
        dict.set_item(key, PyList::new(py, values)?)?;
    }
    Ok(dict)
}
