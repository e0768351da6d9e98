//! `hull-cni`: the CNI plugin binary. Reads CNI_* and the config on stdin, prints the result
//! (or the spec's error JSON) on stdout; see hull_net::cni for the keys and the state root.

use std::io::{Read, Write};

use hull_net::cni::{self, CniError, Env};

fn main() {
    let outcome = (|| {
        let env = Env::from_env()?;
        let mut stdin = Vec::new();
        std::io::stdin()
            .read_to_end(&mut stdin)
            .map_err(|e| CniError::new(5, format!("cannot read stdin: {e}")))?;
        cni::run(&env, &stdin)
    })();
    let mut out = std::io::stdout().lock();
    match outcome {
        Ok(Some(v)) => {
            let _ = writeln!(out, "{v}");
        }
        Ok(None) => {}
        Err(e) => {
            let _ = writeln!(out, "{}", serde_json::to_string(&e).unwrap_or_default());
            let _ = out.flush();
            std::process::exit(1);
        }
    }
}
