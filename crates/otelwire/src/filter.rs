//! Changing the log filter while the service runs.

use std::fmt;
use std::sync::Arc;

use crate::layers::{FilterState, validate};
use crate::telemetry::Telemetry;

/// A filter change was refused: a directive does not parse, or the filter
/// is empty. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter directive {directive:?} is not valid: {reason}")]
pub struct FilterError {
    directive: String,
    reason: String,
}

impl FilterError {
    /// The directive at fault (the whole filter when no single directive
    /// is to blame).
    pub fn directive(&self) -> &str {
        &self.directive
    }

    /// Why it was refused, as the filter parser says.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// A cheap, cloneable handle on the log filter of one pipeline, for code
/// that outlives a borrow of [`Telemetry`] (an admin endpoint, a signal
/// handler). See [`Telemetry::set_filter`].
#[derive(Clone)]
pub struct FilterHandle {
    state: Arc<FilterState>,
    dispatch: tracing::dispatcher::WeakDispatch,
}

impl fmt::Debug for FilterHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilterHandle")
            .field("filter", &self.get())
            .field("traces_filter", &self.traces())
            .finish()
    }
}

impl FilterHandle {
    pub(crate) fn new(state: Arc<FilterState>, dispatch: &tracing::Dispatch) -> Self {
        FilterHandle {
            state,
            dispatch: dispatch.downgrade(),
        }
    }

    /// The log filter in force, as set (spaces and empty directives
    /// removed; without the directives otelwire adds for the transport
    /// crates and the audit trail).
    pub fn get(&self) -> String {
        self.state.current().logs_spec.clone()
    }

    /// The traces filter in force: `OTELWIRE_TRACES_FILTER` (or
    /// [`Builder::traces_filter`](crate::Builder::traces_filter)) when
    /// given, otherwise the log filter's directives raised to at least
    /// `info`.
    pub fn traces(&self) -> String {
        self.state.current().traces_spec.clone()
    }

    /// Puts `filter` in force for every output at once (local lines, log
    /// records, the outputs of [`Builder::with_output`](crate::Builder::with_output)
    /// and layers of [`Builder::with_layer`](crate::Builder::with_layer));
    /// returns the filter it replaced. Same syntax and validation as
    /// `RUST_LOG`; a bad directive is an error naming it, and changes
    /// nothing. The traces filter follows the new filter unless it was
    /// given on its own.
    pub fn set(&self, filter: &str) -> Result<String, FilterError> {
        if filter.split(',').all(|d| d.trim().is_empty()) {
            return Err(FilterError {
                directive: filter.to_owned(),
                reason: "the filter is empty (use `off` to turn logging off)".into(),
            });
        }
        validate(filter).map_err(|e| FilterError {
            directive: e.directive,
            reason: e.reason,
        })?;
        let old = self.state.replace_logs(filter);
        let new = self.state.current();
        if let Some(dispatch) = self.dispatch.upgrade() {
            tracing::dispatcher::with_default(&dispatch, || {
                tracing::info!(
                    target: "otelwire",
                    filter = %new.logs_spec,
                    previous = %old.logs_spec,
                    traces_filter = %new.traces_spec,
                    "log filter changed from {:?} to {:?}",
                    old.logs_spec,
                    new.logs_spec
                )
            });
        }
        Ok(old.logs_spec.clone())
    }
}

impl Telemetry {
    /// Changes the log filter while the service runs, for every output at
    /// once: `telemetry.set_filter("info,orders_api=debug")`. Same syntax
    /// and validation as `RUST_LOG`; a bad directive is an error that names
    /// it and changes nothing. Returns the filter it replaced.
    ///
    /// Events pay nothing for this: the filters are swapped whole and read
    /// without a lock, and `tracing`'s cached per-callsite decisions are
    /// rebuilt on each change. Spans already open keep the span-name and
    /// field directives (`[span{field=x}]=debug`) they were created under.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let telemetry = otelwire::builder().sdk_disabled(true).filter("info").build()?;
    /// let previous = telemetry.set_filter("info,orders_api=debug")?;
    /// assert_eq!(previous, "info");
    /// assert_eq!(telemetry.filter(), "info,orders_api=debug");
    ///
    /// let err = telemetry.set_filter("info,orders_api=loud").unwrap_err();
    /// assert_eq!(err.directive(), "orders_api=loud");
    /// assert_eq!(telemetry.filter(), "info,orders_api=debug"); // unchanged
    /// # Ok(()) }
    /// ```
    pub fn set_filter(&self, filter: &str) -> Result<String, FilterError> {
        self.filter.set(filter)
    }

    /// The log filter in force (see [`FilterHandle::get`]).
    pub fn filter(&self) -> String {
        self.filter.get()
    }

    /// The traces filter in force (see [`FilterHandle::traces`]).
    pub fn traces_filter(&self) -> String {
        self.filter.traces()
    }

    /// A cloneable handle on the filter, for an admin endpoint such as
    /// `otelwire_axum::admin_router`.
    pub fn filter_handle(&self) -> FilterHandle {
        self.filter.clone()
    }
}
