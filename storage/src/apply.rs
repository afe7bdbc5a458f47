//! The deterministic apply of write commands: no clock, no randomness, no I/O.
//! Every replica applying the same command to the same store reaches the same state
//! and answers the same outcome.

use crate::command::{
    Command, DeleteCommand, ExistsPolicy, Expiry, GenerationPolicy, Op, OpFamily, Outcome,
    ReadTouchCommand, WriteCommand,
};
use crate::record::{
    next_generation, Bin, Record, ResultCode, Value, BINS_MAX, BIN_NAME_MAX, RECORD_SIZE_MAX,
};
use crate::record_store::RecordStore;

/// Apply one command. On any error the store is left unchanged.
pub fn apply(store: &mut RecordStore, cmd: &Command) -> Outcome {
    let changes_records = matches!(
        cmd,
        Command::Write(_)
            | Command::Delete(_)
            | Command::DeleteSet { .. }
            | Command::ReadTouch(_)
            | Command::Truncate { .. }
    );
    if store.is_closed() && changes_records {
        return Outcome::error(ResultCode::Namespace);
    }
    match cmd {
        Command::Close => {
            store.close();
            Outcome::ok(0, 0)
        }
        Command::Write(w) => apply_write(store, w),
        Command::Delete(d) => apply_delete(store, d),
        Command::DeleteSet { set } => {
            store.remove_set(set);
            Outcome::ok(0, 0)
        }
        // Catalog commands belong to the metadata group; a data group refuses them.
        Command::Catalog(_) => Outcome::error(ResultCode::Parameter),
        Command::ReadTouch(t) => apply_read_touch(store, t),
        Command::Truncate { set, before } => {
            store.truncate(set.as_deref(), *before);
            Outcome::ok(0, 0)
        }
        Command::Expire { digests, now } => {
            store.expire(digests, *now);
            Outcome::ok(0, 0)
        }
        Command::CreateIndex { name, def } => {
            store.create_index(name, def);
            Outcome::ok(0, 0)
        }
        Command::DropIndex { name } => {
            store.drop_index(name);
            Outcome::ok(0, 0)
        }
        Command::BuildIndex { name, limit } => {
            // The count indexed travels back in `generation` (capped), for the builder's log.
            let n = store.build_index(name, *limit as usize);
            Outcome::ok(u16::try_from(n).unwrap_or(u16::MAX), 0)
        }
    }
}

/// Aerospike's read touch: a new void time and last-update time, the same generation (a
/// touch a reader did not ask for must not fail the next generation check). Skipped (answer
/// NotFound or KeyBusy, nothing changed) when the record is gone, never expires, or a write
/// since the read already set a void time at least as late.
fn apply_read_touch(store: &mut RecordStore, cmd: &ReadTouchCommand) -> Outcome {
    let Some(record) = store.get(&cmd.digest, cmd.now) else {
        return Outcome::error(ResultCode::NotFound);
    };
    let void_time = cmd.now.saturating_add(cmd.ttl);
    if record.void_time == 0 || record.void_time >= void_time {
        return Outcome::error(ResultCode::KeyBusy);
    }
    let mut touched = record;
    touched.void_time = void_time;
    touched.last_update = cmd.last_update;
    let outcome = Outcome::ok(touched.generation, void_time);
    store.insert(cmd.digest, touched);
    outcome
}

fn check_generation(policy: GenerationPolicy, record: &Record) -> Result<(), ResultCode> {
    match policy {
        GenerationPolicy::None => Ok(()),
        GenerationPolicy::Eq(g) if g == record.generation => Ok(()),
        GenerationPolicy::Gt(g) if g > record.generation => Ok(()),
        _ => Err(ResultCode::Generation),
    }
}

fn apply_delete(store: &mut RecordStore, cmd: &DeleteCommand) -> Outcome {
    let Some(record) = store.get(&cmd.digest, cmd.now) else {
        // An expired record is gone for the client; remove its remains too.
        store.remove(&cmd.digest);
        return Outcome::error(ResultCode::NotFound);
    };
    if let Err(code) = check_generation(cmd.generation, &record) {
        return Outcome {
            code,
            generation: record.generation,
            void_time: record.void_time,
            bins: Vec::new(),
        };
    }
    store.remove(&cmd.digest);
    Outcome::ok(0, 0)
}

fn apply_write(store: &mut RecordStore, cmd: &WriteCommand) -> Outcome {
    let existing = store.get(&cmd.digest, cmd.now);
    match plan_write(existing.as_ref(), cmd) {
        Ok((Some(record), outcome)) => {
            store.insert(cmd.digest, record);
            outcome
        }
        Ok((None, outcome)) => {
            store.remove(&cmd.digest);
            outcome
        }
        Err(code) => match existing {
            Some(r) => Outcome {
                code,
                generation: r.generation,
                void_time: r.void_time,
                bins: Vec::new(),
            },
            None => Outcome::error(code),
        },
    }
}

/// Decide the record a write leaves (None = no record) and its answer, without mutating.
fn plan_write(
    existing: Option<&Record>,
    cmd: &WriteCommand,
) -> Result<(Option<Record>, Outcome), ResultCode> {
    let replace = matches!(
        cmd.exists,
        ExistsPolicy::Replace | ExistsPolicy::CreateOrReplace
    );
    match (cmd.exists, existing) {
        (ExistsPolicy::Update | ExistsPolicy::Replace, None) => return Err(ResultCode::NotFound),
        (ExistsPolicy::Create, Some(_)) => return Err(ResultCode::RecordExists),
        _ => {}
    }
    if let (Some(Op::Filter(exp)), Some(r)) = (cmd.ops.first(), existing) {
        let subject = crate::exp::Subject {
            record: Some(r),
            digest: &cmd.digest,
            now: cmd.now,
            now_ms: cmd.last_update,
        };
        if !crate::exp::passes(exp, &subject)? {
            return Err(ResultCode::FilteredOut);
        }
    }
    if let Some(r) = existing {
        check_generation(cmd.generation, r)?;
        if let (Some(sent), Some(stored)) = (&cmd.key, &r.key) {
            if sent != stored {
                return Err(ResultCode::KeyMismatch);
            }
        }
    }
    if replace
        && cmd.ops.iter().any(|op| {
            matches!(
                op,
                Op::Touch
                    | Op::Write(Bin {
                        value: Value::Nil,
                        ..
                    })
            )
        })
    {
        return Err(ResultCode::Parameter);
    }

    let mut bins: Vec<Bin> = match existing {
        Some(r) if !replace => r.bins.clone(),
        _ => Vec::new(),
    };
    let mut exists = existing.is_some();
    let mut out: Vec<(String, Value)> = Vec::new();
    for op in &cmd.ops {
        match op {
            Op::Read(name) => match bins.iter().find(|b| b.name == name) {
                Some(b) => out.push((name.clone(), b.value.clone())),
                None if cmd.respond_all_ops => out.push((name.clone(), Value::Nil)),
                None => {}
            },
            Op::ReadAll => out.extend(bins.iter().map(|b| (b.name.to_string(), b.value.clone()))),
            Op::Write(bin) => {
                check_bin_name(&bin.name)?;
                if bin.value == Value::Nil {
                    bins.retain(|b| b.name != bin.name);
                } else {
                    set_bin(&mut bins, &bin.name, bin.value.clone());
                }
                respond_null(cmd, &bin.name, &mut out);
            }
            Op::Incr(bin) => {
                check_bin_name(&bin.name)?;
                let value = match (current(&bins, &bin.name), &bin.value) {
                    // A missing bin is created from the operand, whatever its type, as
                    // Aerospike does (every modify op is a create on a missing bin).
                    (None, _) => bin.value.clone(),
                    (Some(Value::Int(a)), Value::Int(b)) => Value::Int(a.wrapping_add(*b)),
                    (Some(Value::Float(a)), Value::Float(b)) => Value::Float(a + b),
                    _ => return Err(ResultCode::IncompatibleType),
                };
                set_bin(&mut bins, &bin.name, value);
                respond_null(cmd, &bin.name, &mut out);
            }
            Op::Append(bin) | Op::Prepend(bin) => {
                check_bin_name(&bin.name)?;
                let front = matches!(op, Op::Prepend(_));
                let value = match (current(&bins, &bin.name), &bin.value) {
                    (None, _) => bin.value.clone(),
                    (Some(Value::Str(a)), Value::Str(b)) => Value::Str(concat(a, b, front)),
                    (Some(Value::Blob(ta, a)), Value::Blob(tb, b)) if ta == tb => {
                        Value::Blob(*ta, concat(a, b, front))
                    }
                    _ => return Err(ResultCode::IncompatibleType),
                };
                set_bin(&mut bins, &bin.name, value);
                respond_null(cmd, &bin.name, &mut out);
            }
            Op::Cdt {
                bin,
                payload,
                modify,
            } => {
                check_bin_name(bin)?;
                let effect = crate::cdt::apply(current(&bins, bin), payload, *modify)?;
                if let Some(v) = effect.new_bin {
                    set_bin(&mut bins, bin, v);
                }
                out.push((bin.clone(), effect.result));
            }
            Op::Compute {
                family,
                bin,
                payload,
                modify,
            } => {
                check_bin_name(bin)?;
                // Only expressions read the whole record; others see just their bin.
                let so_far =
                    (family.reads_record() && (exists || !bins.is_empty())).then(|| Record {
                        set: cmd.set.as_str().into(),
                        key: cmd.key.clone(),
                        bins: bins.clone(),
                        generation: existing.map_or(0, |r| r.generation),
                        void_time: existing.map_or(0, |r| r.void_time),
                        last_update: existing.map_or(0, |r| r.last_update),
                    });
                let subject = crate::exp::Subject {
                    record: so_far.as_ref(),
                    digest: &cmd.digest,
                    now: cmd.now,
                    now_ms: cmd.last_update,
                };
                let effect = compute(*family, current(&bins, bin), payload, *modify, &subject)?;
                match effect.new_bin {
                    Some(Value::Nil) => bins.retain(|b| b.name != bin),
                    Some(v) => set_bin(&mut bins, bin, v),
                    None => {}
                }
                out.push((bin.clone(), effect.result));
            }
            // Decided before the ops (above).
            Op::Filter(_) => {}
            Op::Touch => {
                if !exists {
                    return Err(ResultCode::NotFound);
                }
            }
            Op::DeleteAll => {
                if !exists && bins.is_empty() {
                    return Err(ResultCode::NotFound);
                }
                bins.clear();
                exists = false;
                if cmd.respond_all_ops {
                    out.push((String::new(), Value::Nil));
                }
            }
        }
        if !bins.is_empty() {
            exists = true;
        }
    }

    if bins.is_empty() {
        // A record left without bins does not exist (Aerospike deletes it).
        return Ok((
            None,
            Outcome {
                code: ResultCode::Ok,
                generation: 0,
                void_time: 0,
                bins: out,
            },
        ));
    }
    if bins.len() > BINS_MAX {
        return Err(ResultCode::RecordTooBig);
    }
    let generation = existing.map_or(1, |r| next_generation(r.generation));
    let void_time = match cmd.expiry {
        Expiry::Set(v) => v,
        Expiry::Keep { if_new } => existing.map_or(if_new, |r| r.void_time),
    };
    let key = cmd
        .key
        .clone()
        .or_else(|| existing.and_then(|r| r.key.clone()));
    let record = Record {
        set: cmd.set.as_str().into(),
        key,
        bins,
        generation,
        void_time,
        last_update: cmd.last_update,
    };
    if record.size() > RECORD_SIZE_MAX {
        return Err(ResultCode::RecordTooBig);
    }
    Ok((
        Some(record),
        Outcome {
            code: ResultCode::Ok,
            generation,
            void_time,
            bins: out,
        },
    ))
}

/// Run one operation of `family` on a bin holding `current`; `subject` is the record as the
/// command's earlier operations left it (what expressions read). `modify`: the write form.
pub fn compute(
    family: OpFamily,
    current: Option<&Value>,
    payload: &[u8],
    modify: bool,
    subject: &crate::exp::Subject<'_>,
) -> Result<crate::cdt::Effect, ResultCode> {
    match (family, modify) {
        (OpFamily::Exp, false) => Ok(crate::cdt::Effect {
            result: crate::exp::op::read(payload, subject)?,
            new_bin: None,
        }),
        (OpFamily::Exp, true) => crate::exp::op::write(payload, current, subject),
        (OpFamily::Bit, modify) => crate::bits::apply(current, payload, modify),
        (OpFamily::Hll, modify) => crate::hll::apply(current, payload, modify),
    }
}

fn check_bin_name(name: &str) -> Result<(), ResultCode> {
    if name.len() > BIN_NAME_MAX {
        Err(ResultCode::BinName)
    } else {
        Ok(())
    }
}

fn current<'a>(bins: &'a [Bin], name: &str) -> Option<&'a Value> {
    bins.iter().find(|b| b.name == name).map(|b| &b.value)
}

fn set_bin(bins: &mut Vec<Bin>, name: &str, value: Value) {
    match bins.iter_mut().find(|b| b.name == name) {
        Some(b) => b.value = value,
        None => bins.push(Bin::new(name, value)),
    }
}

fn respond_null(cmd: &WriteCommand, name: &str, out: &mut Vec<(String, Value)>) {
    if cmd.respond_all_ops {
        out.push((name.to_string(), Value::Nil));
    }
}

fn concat(existing: &[u8], operand: &[u8], front: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(existing.len() + operand.len());
    if front {
        v.extend_from_slice(operand);
        v.extend_from_slice(existing);
    } else {
        v.extend_from_slice(existing);
        v.extend_from_slice(operand);
    }
    v
}

#[cfg(test)]
mod tests;
