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

#[cfg(test)]
mod tests {
    use prometheus::{Encoder, Registry, TextEncoder};

    use super::*;

    const HITS: Def = Def::counter("t_hits_total", &["kind"], "Hits.");
    const WAIT: Def = Def::histogram("t_wait_seconds", &[], "Waits.");
    const DEPTH: Def = Def::gauge("t_depth", &[], "Depth.");

    #[test]
    fn families_read_at_scrape_encode_like_registered_metrics() {
        let registry = Registry::new();
        let collector = ScrapeCollector::new(&[&HITS, &WAIT, &DEPTH], || {
            vec![
                HITS.family().value(&["a"], 3.0).value(&["b"], 1.0).done(),
                WAIT.family()
                    .histogram(&[], &[(0.1, 1), (1.0, 2)], 3, 2.5)
                    .done(),
                // No sample: the registry leaves the family out.
                DEPTH.family().done(),
            ]
        });
        registry.register(Box::new(collector.unwrap())).unwrap();
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        for line in [
            "# TYPE t_hits_total counter",
            "t_hits_total{kind=\"a\"} 3",
            "t_hits_total{kind=\"b\"} 1",
            "# TYPE t_wait_seconds histogram",
            "t_wait_seconds_bucket{le=\"0.1\"} 1",
            "t_wait_seconds_bucket{le=\"+Inf\"} 3",
            "t_wait_seconds_sum 2.5",
            "t_wait_seconds_count 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
        assert!(!text.contains("t_depth"), "{text}");
    }

    #[test]
    fn a_second_collector_of_the_same_family_is_refused() {
        let registry = Registry::new();
        let first = ScrapeCollector::new(&[&DEPTH], Vec::new).unwrap();
        let second = ScrapeCollector::new(&[&DEPTH], Vec::new).unwrap();
        registry.register(Box::new(first)).unwrap();
        assert!(registry.register(Box::new(second)).is_err());
    }
}
