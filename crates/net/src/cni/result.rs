//! The CNI result: interfaces, ips, routes, dns; started from a chained plugin's prevResult,
//! and printed in the config's cniVersion (0.3.x/0.4.0 add `version` to each ip).

use serde_json::{json, Value};

/// A result under construction.
#[derive(Debug, Clone, Default)]
pub struct CniResult {
    pub interfaces: Vec<Value>,
    pub ips: Vec<Value>,
    pub routes: Vec<Value>,
    pub dns: Value,
}

fn array(v: Option<&Value>, key: &str) -> Vec<Value> {
    v.and_then(|v| v.get(key))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

impl CniResult {
    /// Starts from a chained plugin's result, keeping everything it reported.
    pub fn from_prev(prev: Option<&Value>) -> Self {
        CniResult {
            interfaces: array(prev, "interfaces"),
            ips: array(prev, "ips")
                .into_iter()
                .map(|mut ip| {
                    if let Some(o) = ip.as_object_mut() {
                        o.remove("version");
                    }
                    ip
                })
                .collect(),
            routes: array(prev, "routes"),
            dns: prev
                .and_then(|p| p.get("dns"))
                .cloned()
                .unwrap_or_else(|| json!({})),
        }
    }

    /// Appends an interface and returns its index in `interfaces`.
    pub fn add_interface(&mut self, name: &str, mac: &str, sandbox: Option<&str>) -> usize {
        let mut i = json!({ "name": name, "mac": mac });
        if let Some(s) = sandbox {
            i["sandbox"] = json!(s);
        }
        self.interfaces.push(i);
        self.interfaces.len() - 1
    }

    /// The result JSON in `version`'s form.
    pub fn to_json(&self, version: &str) -> Value {
        let old = version.starts_with("0.");
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut ip = ip.clone();
                if old {
                    ip["version"] = json!("4");
                }
                ip
            })
            .collect();
        let mut out = json!({
            "cniVersion": version,
            "interfaces": self.interfaces,
            "ips": ips,
            "routes": self.routes,
        });
        if self.dns.as_object().is_some_and(|o| !o.is_empty()) {
            out["dns"] = self.dns.clone();
        }
        out
    }
}
