//! Scores -> verdict: the decision rules. They are deliberately simple so a quality
//! engineer can predict them from the manifest: the defect score is `1 - P(good labels)`; inside the uncertain
//! band the operator decides; otherwise the threshold decides, and a defect is named by
//! its most likely class when that class is confident enough.

use crate::inspection::{Scores, UncertainReason, Verdict};
use crate::model::manifest::Manifest;

/// The manifest's decision rules, resolved to label indices once.
#[derive(Debug, Clone)]
pub struct DecisionRule {
    labels: Vec<String>,
    is_good: Vec<bool>,
    class_thresholds: Vec<f32>,
    defect_threshold: f32,
    band: [f32; 2],
}

impl DecisionRule {
    pub fn from_manifest(manifest: &Manifest) -> Self {
        let d = &manifest.decision;
        Self {
            labels: manifest.labels.clone(),
            is_good: manifest
                .labels
                .iter()
                .map(|l| manifest.is_good(l))
                .collect(),
            class_thresholds: manifest
                .labels
                .iter()
                .map(|l| {
                    d.class_thresholds
                        .get(l)
                        .copied()
                        .unwrap_or(d.class_threshold)
                })
                .collect(),
            defect_threshold: d.defect_threshold,
            band: d.uncertain_band,
        }
    }

    /// The same rule with another reject threshold and no uncertain band, for sweeps.
    pub fn with_threshold(&self, threshold: f32) -> Self {
        Self {
            defect_threshold: threshold,
            band: [threshold, threshold],
            ..self.clone()
        }
    }

    /// The same rule with another threshold and uncertain band (an engineer's change).
    pub fn with_decision(&self, defect_threshold: f32, band: [f32; 2]) -> Result<Self, String> {
        crate::model::manifest::check_thresholds(defect_threshold, band)?;
        Ok(Self {
            defect_threshold,
            band,
            ..self.clone()
        })
    }

    pub fn defect_threshold(&self) -> f32 {
        self.defect_threshold
    }

    pub fn uncertain_band(&self) -> [f32; 2] {
        self.band
    }

    /// The lowest defect score a part is not passed at: the band's bottom, or the threshold.
    pub fn flag_level(&self) -> f32 {
        let [low, high] = self.band;
        if low < high {
            low.min(self.defect_threshold)
        } else {
            self.defect_threshold
        }
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn is_good_label(&self, index: usize) -> bool {
        self.is_good.get(index).copied().unwrap_or(false)
    }

    pub fn has_good_label(&self) -> bool {
        self.is_good.contains(&true)
    }

    pub fn scores(&self, probabilities: Vec<f32>) -> Scores {
        let good: f32 = probabilities
            .iter()
            .zip(&self.is_good)
            .filter(|(_, g)| **g)
            .map(|(p, _)| p)
            .sum();
        let top = argmax(probabilities.iter().copied().enumerate());
        Scores {
            defect_score: (1.0 - good).clamp(0.0, 1.0),
            probabilities,
            top,
            familiarity: None,
        }
    }

    pub fn verdict(&self, scores: &Scores) -> Verdict {
        let s = scores.defect_score;
        let [low, high] = self.band;
        if low < high && (low..high).contains(&s) {
            return LOW_CONFIDENCE;
        }
        if s < self.defect_threshold {
            return Verdict::Good;
        }
        let defects = scores
            .probabilities
            .iter()
            .copied()
            .enumerate()
            .filter(|(i, _)| !self.is_good[*i]);
        let class = argmax(defects);
        match scores.probabilities.get(class) {
            Some(p) if *p >= self.class_thresholds[class] => Verdict::Defect {
                class: self.labels[class].clone(),
            },
            _ => LOW_CONFIDENCE,
        }
    }
}

const LOW_CONFIDENCE: Verdict = Verdict::Uncertain {
    reason: UncertainReason::LowConfidence,
};

fn argmax(values: impl Iterator<Item = (usize, f32)>) -> usize {
    values
        .fold((0, f32::NEG_INFINITY), |best, (i, v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(extra: &str) -> DecisionRule {
        let text = format!(
            "name = \"m\"\nversion = \"1\"\nonnx = \"m.onnx\"\nlabels = [\"good\", \"crack\", \"dent\"]\n\
             good = [\"good\"]\n[input]\nwidth = 1\nheight = 1\n[decision]\n{extra}"
        );
        DecisionRule::from_manifest(&Manifest::from_toml(&text).expect("manifest"))
    }

    fn verdict(rule: &DecisionRule, p: [f32; 3]) -> Verdict {
        rule.verdict(&rule.scores(p.to_vec()))
    }

    #[test]
    fn threshold_splits_good_from_defect() {
        let r = rule("defect_threshold = 0.5\nuncertain_band = [0.5, 0.5]");
        assert_eq!(verdict(&r, [0.9, 0.05, 0.05]), Verdict::Good);
        assert_eq!(
            verdict(&r, [0.2, 0.7, 0.1]),
            Verdict::Defect {
                class: "crack".into()
            }
        );
        assert_eq!(
            verdict(&r, [0.45, 0.1, 0.45]),
            Verdict::Defect {
                class: "dent".into()
            }
        );
    }

    #[test]
    fn band_makes_uncertain() {
        let r = rule("defect_threshold = 0.5\nuncertain_band = [0.3, 0.7]");
        assert_eq!(verdict(&r, [0.6, 0.3, 0.1]), LOW_CONFIDENCE);
        assert_eq!(verdict(&r, [0.75, 0.2, 0.05]), Verdict::Good);
        assert_eq!(
            verdict(&r, [0.29, 0.7, 0.01]),
            Verdict::Defect {
                class: "crack".into()
            }
        );
    }

    #[test]
    fn weak_class_is_uncertain() {
        let r = rule("class_threshold = 0.3\n[decision.class_thresholds]\ncrack = 0.8");
        assert_eq!(verdict(&r, [0.1, 0.7, 0.2]), LOW_CONFIDENCE);
        assert_eq!(
            verdict(&r, [0.1, 0.2, 0.7]),
            Verdict::Defect {
                class: "dent".into()
            }
        );
    }

    #[test]
    fn defect_score_sums_good_labels() {
        let r = rule("");
        let s = r.scores(vec![0.25, 0.5, 0.25]);
        assert_eq!((s.defect_score, s.top), (0.75, 1));
    }
}
