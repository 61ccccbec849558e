//! MongoDB's `failCommand` fail point: the `fail-command` fault source, and the
//! proof, before a run, that the server honours it for each command a scenario
//! targets. A server can accept `configureFailPoint` and still ignore it for some
//! commands (mongoeco handles `commitTransaction` in its wire layer, which never
//! consults the fail point): a window that fails nothing would make a PASS prove
//! nothing, so such a scenario stops with exit 3 instead.

use mongodb::bson::{Bson, Document, doc};
use mongodb::{Client, Database};
use std::time::Duration;

use super::wire::bounded;

/// The commands whose fail point dualwrite can prove fires (validation allows
/// only these).
pub const PROVABLE: [&str; 7] = [
    "insert",
    "find",
    "update",
    "delete",
    "findAndModify",
    "commitTransaction",
    "abortTransaction",
];

/// The CRUD commands a fail point can be narrowed to one collection for.
const CRUD: [&str; 5] = ["insert", "update", "delete", "find", "findAndModify"];

/// `configureFailPoint failCommand` turning the fail point on (`Some`) or off.
pub fn command(on: Option<FailPoint<'_>>) -> Document {
    let Some(p) = on else {
        return doc! {"configureFailPoint": "failCommand", "mode": "off"};
    };
    let mut data = doc! {
        "failCommands": p.commands.to_vec(),
        "errorCode": p.error_code,
        "errorLabels": p.error_labels.to_vec(),
        "closeConnection": p.close_connection,
    };
    // The fail point is server-wide; a collection narrows CRUD commands to one
    // side (transaction commands have no collection).
    if let Some(ns) = p.namespace
        && p.commands.iter().all(|c| CRUD.contains(&c.as_str()))
    {
        data.insert("namespace", ns);
    }
    let mode = match p.times {
        Some(n) => Bson::Document(doc! {"times": n as i32}),
        None => Bson::String("alwaysOn".into()),
    };
    doc! {"configureFailPoint": "failCommand", "mode": mode, "data": data}
}

pub struct FailPoint<'a> {
    pub commands: &'a [String],
    pub error_code: i32,
    pub error_labels: &'a [String],
    pub close_connection: bool,
    pub times: Option<u32>,
    /// `db.collection` the CRUD commands are narrowed to.
    pub namespace: Option<String>,
}

/// Proves the fail point fires for `command`: armed once for that command alone,
/// the command is run on a scratch collection and must fail with the code; then
/// it is turned off. `Err` says what happened instead.
pub async fn prove_fires(
    client: &Client,
    db: &Database,
    scratch: &str,
    command_name: &str,
    limit: Duration,
) -> Result<(), String> {
    const CODE: i32 = 4242; // not a code any server sends by itself
    let admin = client.database("admin");
    let commands = [command_name.to_string()];
    let arm = command(Some(FailPoint {
        commands: &commands,
        error_code: CODE,
        error_labels: &[],
        close_connection: false,
        times: Some(1),
        namespace: None,
    }));
    bounded(limit, admin.run_command(arm).into_future())
        .await
        .map_err(|f| format!("configureFailPoint: {}", f.detail))?;
    let outcome = run_once(client, db, scratch, command_name, limit).await;
    let _ = bounded(limit, admin.run_command(command(None)).into_future()).await;
    match outcome {
        Err(e) if e.contains(&CODE.to_string()) => Ok(()),
        Err(e) => Err(format!(
            "`{command_name}` failed, but not with the fail point's code: {e}"
        )),
        Ok(()) => Err(format!(
            "`{command_name}` succeeded with the fail point armed for it: this server ignores failCommand for `{command_name}`"
        )),
    }
}

/// Runs one scratch instance of a command; `Err` carries the error text.
async fn run_once(
    client: &Client,
    db: &Database,
    scratch: &str,
    name: &str,
    limit: Duration,
) -> Result<(), String> {
    let coll = db.collection::<Document>(scratch);
    let text = |e: mongodb::error::Error| format!("{e} {:?}", e.kind);
    let run = async {
        match name {
            "insert" => coll
                .insert_one(doc! {"probe": "fail-point"})
                .await
                .map(|_| ()),
            "commitTransaction" | "abortTransaction" => {
                let mut session = client.start_session().await?;
                session.start_transaction().await?;
                coll.insert_one(doc! {"probe": "fail-point"})
                    .session(&mut session)
                    .await?;
                if name == "commitTransaction" {
                    session.commit_transaction().await
                } else {
                    session.abort_transaction().await
                }
            }
            other => {
                let cmd = match other {
                    "find" => doc! {"find": scratch, "filter": {}},
                    "update" => {
                        doc! {"update": scratch, "updates": [{"q": {}, "u": {"$set": {"p": 1}}}]}
                    }
                    "delete" => doc! {"delete": scratch, "deletes": [{"q": {"p": 2}, "limit": 1}]},
                    _ => doc! {"findAndModify": scratch, "query": {}, "update": {"$set": {"p": 1}}},
                };
                db.run_command(cmd).await.map(|_| ())
            }
        }
    };
    match tokio::time::timeout(limit, run).await {
        Ok(r) => r.map_err(text),
        Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
    }
}
