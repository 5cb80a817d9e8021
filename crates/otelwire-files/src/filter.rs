//! Which events a sink takes: level, category, target and field predicates.

use std::fmt;
use std::sync::Arc;

use tracing::Metadata;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;

/// The targets of audit and security events (`otelwire::audit` events use them).
pub const CATEGORY_TARGETS: &[&str] = &["otelwire::audit", "otelwire::security"];

/// The field that names an event's category; `"audit"` and `"security"`
/// mark audit events.
pub const CATEGORY_FIELD: &str = "event.category";

/// Whether a field name marks a metric event: `metric`, or any name under
/// `metric.` (such as `metric.name`, `metric.value`, `metric.unit`).
///
/// ```
/// assert!(otelwire_files::is_metric_field("metric.value"));
/// assert!(otelwire_files::is_metric_field("metric"));
/// assert!(!otelwire_files::is_metric_field("metrics_enabled"));
/// ```
pub fn is_metric_field(name: &str) -> bool {
    name == "metric" || name.starts_with("metric.")
}

type FieldPredicate = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What a sink takes. Every condition set must hold; a new filter takes
/// everything that `RUST_LOG` lets through.
///
/// ```
/// use otelwire_files::Filter;
/// use tracing::Level;
///
/// let alerts = Filter::all().level(Level::WARN);
/// let payments = Filter::all().targets(["payments", "billing::invoices"]);
/// let metrics = Filter::all().field(otelwire_files::is_metric_field);
/// let audit = Filter::audit();
/// # let _ = (alerts, payments, metrics, audit);
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct Filter {
    pub(crate) level: Option<LevelFilter>,
    pub(crate) targets: Option<Vec<String>>,
    pub(crate) audit_only: bool,
    pub(crate) field: Option<FieldPredicate>,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("level", &self.level)
            .field("targets", &self.targets)
            .field("audit_only", &self.audit_only)
            .field("field", &self.field.is_some())
            .finish()
    }
}

impl Filter {
    /// Everything.
    pub fn all() -> Self {
        Filter::default()
    }

    /// Audit and security events only: target `otelwire::audit` or
    /// `otelwire::security` (or below), or a field `event.category` whose
    /// value is `audit` or `security`. Any level.
    pub fn audit() -> Self {
        Filter {
            audit_only: true,
            ..Filter::default()
        }
    }

    /// Events with a metric field (see [`is_metric_field`]).
    pub fn metrics() -> Self {
        Filter::all().field(is_metric_field)
    }

    /// Events at `level` or more severe (`WARN` takes warnings and errors).
    pub fn level(mut self, level: tracing::Level) -> Self {
        self.level = Some(LevelFilter::from_level(level));
        self
    }

    /// Events whose target is one of `targets` or a module below one
    /// (`payments` takes `payments::card` but not `payments_v2`).
    pub fn targets<I, T>(mut self, targets: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.targets = Some(targets.into_iter().map(Into::into).collect());
        self
    }

    /// Events that declare at least one field whose name satisfies `pred`.
    pub fn field<F>(mut self, pred: F) -> Self
    where
        F: Fn(&str) -> bool + Send + Sync + 'static,
    {
        self.field = Some(Arc::new(pred));
        self
    }

    /// Whether an event with this metadata (and, when asked, category)
    /// passes. `audit` is evaluated only when the filter needs it.
    pub(crate) fn matches(
        &self,
        meta: &Metadata<'_>,
        level: LevelFilter,
        targets: &[String],
        audit: &mut dyn FnMut() -> bool,
    ) -> bool {
        if *meta.level() > level {
            return false;
        }
        if !targets.is_empty() && !targets.iter().any(|t| under(meta.target(), t)) {
            return false;
        }
        if let Some(pred) = &self.field
            && !meta.fields().iter().any(|f| pred(f.name()))
        {
            return false;
        }
        !self.audit_only || audit()
    }
}

/// `target` is `prefix` or a module below it.
pub(crate) fn under(target: &str, prefix: &str) -> bool {
    target
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// Whether an event is an audit or security event: by its target, else by
/// the value of its `event.category` field.
pub(crate) fn is_audit(meta: &Metadata<'_>, record: impl FnOnce(&mut dyn Visit)) -> bool {
    if CATEGORY_TARGETS.iter().any(|t| under(meta.target(), t)) {
        return true;
    }
    if meta.fields().field(CATEGORY_FIELD).is_none() {
        return false;
    }
    let mut v = CategoryVisitor(false);
    record(&mut v);
    v.0
}

struct CategoryVisitor(bool);

impl Visit for CategoryVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == CATEGORY_FIELD {
            self.0 = matches!(value, "audit" | "security");
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == CATEGORY_FIELD {
            let s = format!("{value:?}");
            self.0 = matches!(s.trim_matches('"'), "audit" | "security");
        }
    }
}
