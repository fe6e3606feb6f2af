//! Service keys that pass engine settings through with a change of shape: `gpus` and
//! `deploy.resources.reservations.devices` (device requests), `post_start`/`pre_stop`
//! (hooks), `blkio_config`. Pure: a compose value in, the `Container` spec's value (or why
//! not) out, as docker compose builds the engine's request (`pkg/compose/create.go`:
//! `getDeployResources`, `setReservations`, `setBlkio`; `pkg/compose/hook.go`).

use serde_yaml_ng::{Mapping, Value};

use super::values::{map_of_strings, scalar_string, shell_words, strings_of};

/// compose-go's `DeviceCount`: a number, or `all` (-1).
fn count(v: &Value) -> Result<i64, String> {
    let text = scalar_string(v);
    if text.eq_ignore_ascii_case("all") {
        return Ok(-1);
    }
    text.parse::<i64>().map_err(|_| format!("invalid value {text:?}, the only value allowed is 'all' or a number"))
}

/// Device requests of `gpus` (`gpu` true: compose appends the `gpu` capability, and `gpus:
/// all` is every GPU) or of `deploy.resources.reservations.devices` (as written). A request
/// without `count` or `device_ids` is for all devices (compose-go's `deviceRequestDefaults`).
pub(super) fn device_requests(v: &Value, gpu: bool) -> Result<Value, String> {
    let items: Vec<Value> = match v {
        Value::String(_) if gpu => vec![Value::Mapping(Mapping::new())],
        Value::Sequence(s) => s.clone(),
        _ => return Err("write all, or a list of { driver, count, device_ids, capabilities, options }".into()),
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Mapping(m) = item else { return Err(format!("[{i}]: a device request is a mapping")) };
        let mut r = Mapping::new();
        for (k, x) in m {
            match k.as_str().unwrap_or("") {
                "driver" => {
                    r.insert("driver".into(), scalar_string(x).into());
                }
                "count" => {
                    r.insert("count".into(), count(x).map_err(|e| format!("[{i}].count: {e}"))?.into());
                }
                "device_ids" => {
                    r.insert("device_ids".into(), strings_of(x));
                }
                "capabilities" => {
                    r.insert("capabilities".into(), strings_of(x));
                }
                "options" => {
                    r.insert("options".into(), map_of_strings(x));
                }
                other => {
                    return Err(format!(
                        "[{i}].{other}: unknown key of a device request: write driver, count, device_ids, capabilities or options"
                    ))
                }
            }
        }
        if !r.contains_key("count") && !r.contains_key("device_ids") {
            r.insert("count".into(), (-1).into());
        }
        if gpu {
            let mut caps = r.get("capabilities").and_then(Value::as_sequence).cloned().unwrap_or_default();
            caps.push("gpu".into());
            r.insert("capabilities".into(), Value::Sequence(caps));
        }
        out.push(Value::Mapping(r));
    }
    Ok(Value::Sequence(out))
}

/// `post_start` / `pre_stop`: a list of `{ command, user, privileged, working_dir,
/// environment }`; a string command is split as a shell would.
pub(super) fn hooks(v: &Value) -> Result<Value, String> {
    let Value::Sequence(items) = v else {
        return Err("a list of { command, user, privileged, working_dir, environment }".into());
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Mapping(m) = item else { return Err(format!("[{i}]: a hook is a mapping with command:")) };
        let mut h = Mapping::new();
        for (k, x) in m {
            match k.as_str().unwrap_or("") {
                "command" => {
                    let argv = match x {
                        Value::String(s) => shell_words(s)
                            .ok_or_else(|| format!("[{i}].command has an unclosed quote"))?
                            .into_iter()
                            .map(Value::String)
                            .collect(),
                        Value::Sequence(_) => strings_of(x).as_sequence().cloned().unwrap_or_default(),
                        _ => return Err(format!("[{i}].command is a string or a list")),
                    };
                    h.insert("command".into(), Value::Sequence(argv));
                }
                "user" | "working_dir" => {
                    h.insert(k.clone(), scalar_string(x).into());
                }
                "privileged" => {
                    h.insert(k.clone(), (scalar_string(x) == "true").into());
                }
                "environment" => {
                    h.insert(k.clone(), map_of_strings(x));
                }
                other => {
                    return Err(format!(
                    "[{i}].{other}: unknown key of a hook: write command, user, privileged, working_dir or environment"
                ))
                }
            }
        }
        if !h.contains_key("command") {
            return Err(format!("[{i}]: a hook runs a command: write command:"));
        }
        out.push(Value::Mapping(h));
    }
    Ok(Value::Sequence(out))
}

/// `blkio_config`: `weight`, `weight_device: [{ path, weight }]`, and the four throttles
/// `device_{read,write}_{bps,iops}: [{ path, rate }]`.
pub(super) fn blkio(v: &Value) -> Result<Value, String> {
    let Value::Mapping(m) = v else { return Err("a mapping of weight, weight_device and device_*_bps/iops".into()) };
    let mut out = Mapping::new();
    for (k, x) in m {
        let key = k.as_str().unwrap_or("");
        match key {
            "weight" => {
                out.insert(k.clone(), scalar_string(x).parse::<u16>().map_err(|_| "weight is 10 to 1000".to_string())?.into());
            }
            "weight_device" | "device_read_bps" | "device_write_bps" | "device_read_iops" | "device_write_iops" => {
                let field = if key == "weight_device" { "weight" } else { "rate" };
                let mut list = Vec::new();
                for (i, d) in x.as_sequence().into_iter().flatten().enumerate() {
                    let (Some(path), Some(val)) = (d.get("path"), d.get(field)) else {
                        return Err(format!("{key}[{i}]: write {{ path: /dev/…, {field}: … }}"));
                    };
                    let mut e = Mapping::new();
                    e.insert("path".into(), scalar_string(path).into());
                    let val = if field == "weight" {
                        scalar_string(val).parse::<u16>().map_err(|_| format!("{key}[{i}].weight is 10 to 1000"))?.into()
                    } else {
                        scalar_string(val).into()
                    };
                    e.insert(field.into(), val);
                    list.push(Value::Mapping(e));
                }
                out.insert(k.clone(), Value::Sequence(list));
            }
            other => {
                return Err(format!(
                    "{other}: unknown key of blkio_config: write weight, weight_device, device_read_bps, device_write_bps, device_read_iops or device_write_iops"
                ))
            }
        }
    }
    Ok(Value::Mapping(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml_ng::from_str(s).unwrap_or(Value::Null)
    }

    /// compose's `getDeployResources`: `gpus` entries get the `gpu` capability appended;
    /// compose-go's `transformGpus` makes `gpus: all` one request for every device, and
    /// `deviceRequestDefaults` gives `count: all` to a request with neither count nor ids.
    #[test]
    fn gpus_and_reserved_devices_are_device_requests() {
        assert_eq!(device_requests(&yaml("all"), true), Ok(yaml("[{count: -1, capabilities: [gpu]}]")));
        assert_eq!(
            device_requests(&yaml("[{driver: nvidia, device_ids: ['0', '3'], capabilities: [compute]}]"), true),
            Ok(yaml("[{driver: nvidia, device_ids: ['0', '3'], capabilities: [compute, gpu]}]"))
        );
        assert_eq!(
            device_requests(&yaml("[{driver: nvidia, count: 1, capabilities: [gpu]}]"), false),
            Ok(yaml("[{driver: nvidia, count: 1, capabilities: [gpu]}]"))
        );
        assert!(device_requests(&yaml("[{count: many}]"), false).is_err_and(|e| e.contains("'all' or a number")));
        assert!(device_requests(&yaml("all"), false).is_err());
    }

    #[test]
    fn hooks_and_blkio_take_the_engines_shape() {
        assert_eq!(
            hooks(&yaml("[{command: 'sh -c \"echo hi\"', user: root, environment: [A=1]}]")),
            Ok(yaml("[{command: [sh, -c, echo hi], user: root, environment: {A: '1'}}]"))
        );
        assert!(hooks(&yaml("[{user: root}]")).is_err_and(|e| e.contains("command")));
        assert_eq!(
            blkio(&yaml("{weight: 300, device_read_bps: [{path: /dev/sda, rate: 20mb}]}")),
            Ok(yaml("{weight: 300, device_read_bps: [{path: /dev/sda, rate: 20mb}]}"))
        );
        assert!(blkio(&yaml("{weight: heavy}")).is_err());
    }
}
