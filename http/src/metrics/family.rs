//! Metric families built at scrape time from counters kept elsewhere (the engine's, the store's,
//! the cluster's), in the registry's own model: the registry gathers and encodes them with the
//! request metrics, so `/metrics` has one encoder and no hand-written text.

use prometheus::core::{Collector, Desc};
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};

/// One family's name, type, label names and help: what a collector declares to the registry,
/// and what it fills at each scrape.
pub struct Def {
    pub name: &'static str,
    pub kind: MetricType,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

impl Def {
    pub const fn counter(
        name: &'static str,
        labels: &'static [&'static str],
        help: &'static str,
    ) -> Self {
        Self {
            name,
            kind: MetricType::COUNTER,
            labels,
            help,
        }
    }
    pub const fn gauge(
        name: &'static str,
        labels: &'static [&'static str],
        help: &'static str,
    ) -> Self {
        Self {
            name,
            kind: MetricType::GAUGE,
            labels,
            help,
        }
    }
    pub const fn histogram(
        name: &'static str,
        labels: &'static [&'static str],
        help: &'static str,
    ) -> Self {
        Self {
            name,
            kind: MetricType::HISTOGRAM,
            labels,
            help,
        }
    }

    fn desc(&self) -> Result<Desc, prometheus::Error> {
        Desc::new(
            self.name.to_owned(),
            self.help.to_owned(),
            self.labels.iter().map(|l| (*l).to_owned()).collect(),
            std::collections::HashMap::new(),
        )
    }

    /// An empty family of this definition (the registry leaves out families without samples).
    pub fn family(&self) -> Family {
        let mut mf = MetricFamily::default();
        mf.set_name(self.name.to_owned());
        mf.set_help(self.help.to_owned());
        mf.set_field_type(self.kind);
        Family {
            mf,
            def_labels: self.labels,
        }
    }
}

/// A family being filled: each sample gives one value per label of its definition, in order.
pub struct Family {
    mf: MetricFamily,
    def_labels: &'static [&'static str],
}

impl Family {
    fn metric(&self, values: &[&str]) -> Metric {
        let mut m = Metric::default();
        let mut pairs: Vec<LabelPair> = self
            .def_labels
            .iter()
            .zip(values)
            .map(|(name, value)| {
                let mut p = LabelPair::default();
                p.set_name((*name).to_owned());
                p.set_value((*value).to_owned());
                p
            })
            .collect();
        pairs.sort_by(|a, b| a.name().cmp(b.name()));
        m.set_label(pairs);
        m
    }

    /// A counter or gauge sample.
    pub fn value(mut self, labels: &[&str], value: f64) -> Self {
        let mut m = self.metric(labels);
        match self.mf.get_field_type() {
            MetricType::COUNTER => {
                let mut c = Counter::default();
                c.set_value(value);
                m.set_counter(c);
            }
            _ => {
                let mut g = Gauge::default();
                g.set_value(value);
                m.set_gauge(g);
            }
        }
        self.mf.mut_metric().push(m);
        self
    }

    /// A histogram sample from cumulative buckets (upper bound, count), the count and the sum.
    pub fn histogram(
        mut self,
        labels: &[&str],
        buckets: &[(f64, u64)],
        count: u64,
        sum: f64,
    ) -> Self {
        let mut m = self.metric(labels);
        let mut h = Histogram::default();
        h.set_sample_count(count);
        h.set_sample_sum(sum);
        h.set_bucket(
            buckets
                .iter()
                .map(|(le, n)| {
                    let mut b = Bucket::default();
                    b.set_upper_bound(*le);
                    b.set_cumulative_count(*n);
                    b
                })
                .collect(),
        );
        m.set_histogram(h);
        self.mf.mut_metric().push(m);
        self
    }

    pub fn done(self) -> MetricFamily {
        self.mf
    }
}

/// A collector that builds its families from `read` at each scrape.
pub struct ScrapeCollector<F> {
    descs: Vec<Desc>,
    read: F,
}

impl<F: Fn() -> Vec<MetricFamily> + Send + Sync + 'static> ScrapeCollector<F> {
    pub fn new(defs: &[&Def], read: F) -> Result<Self, prometheus::Error> {
        let descs = defs.iter().map(|d| d.desc()).collect::<Result<_, _>>()?;
        Ok(Self { descs, read })
    }
}

impl<F: Fn() -> Vec<MetricFamily> + Send + Sync> Collector for ScrapeCollector<F> {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        (self.read)()
    }
}
