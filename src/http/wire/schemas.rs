//! The JSON shapes of payload schemas (AXP `api.schemas.upsert` and `api.schemas.get`
//! responses), converted explicitly from the stored row.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::store::schemas::SchemaRow;
use crate::Error;

#[derive(Serialize)]
pub struct Schema<'a> {
    pub semantic_type: &'a str,
    pub schema_ref: &'a str,
    pub schema_hash: &'a str,
    pub compatibility_mode: &'a str,
    pub scope: &'a str,
    pub owner_agent: Option<&'a str>,
    pub active: bool,
    /// Only in `GET` answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_json: Option<&'a RawValue>,
    pub created_at: &'a str,
    pub updated_at: &'a str,
}

#[derive(Serialize)]
pub struct SchemaEnvelope<'a> {
    pub ok: bool,
    pub schema: Schema<'a>,
}

impl<'a> SchemaEnvelope<'a> {
    pub fn new(r: &'a SchemaRow, with_schema: bool) -> Result<SchemaEnvelope<'a>, Error> {
        let schema_json = if with_schema {
            Some(serde_json::from_str::<&RawValue>(&r.schema_json)?)
        } else {
            None
        };
        Ok(SchemaEnvelope {
            ok: true,
            schema: Schema {
                semantic_type: &r.semantic_type,
                schema_ref: &r.schema_ref,
                schema_hash: &r.schema_hash,
                compatibility_mode: &r.compatibility_mode,
                scope: &r.scope,
                owner_agent: r.owner_agent.as_deref(),
                active: r.active,
                schema_json,
                created_at: &r.created_at,
                updated_at: &r.updated_at,
            },
        })
    }
}
