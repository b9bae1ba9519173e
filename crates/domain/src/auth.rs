//! Roles of API tokens and what each may do.

use serde::{Deserialize, Serialize};
use strum::{EnumString, IntoStaticStr};
use utoipa::ToSchema;

/// The role a token carries (DESIGN §3).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, IntoStaticStr, EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Role {
    /// Tokens and settings, and everything an operator may do.
    Admin,
    /// Fleet, releases, configurations, rollouts, install, rollback; everything `ci` may do.
    Operator,
    /// Read, and "assess now".
    Ci,
    /// Read only.
    Reader,
    /// One machine's agent: its own jobs, results, inventory and health, nothing else.
    Agent,
}

impl Role {
    /// Whether a token of this role may call an endpoint that requires `required`.
    ///
    /// Human roles form a ladder (admin ⊇ operator ⊇ ci ⊇ reader); the agent role
    /// stands apart, so an agent token can never read the fleet and no human token
    /// can act as an agent.
    pub fn allows(self, required: Role) -> bool {
        match (self, required) {
            // Compare with `required`, not a binding: in `(r, Role::Agent)` an `r`
            // would be `self`, and every human role would pass as an agent.
            (Role::Agent, _) | (_, Role::Agent) => self == required,
            _ => self.rank() >= required.rank(),
        }
    }

    fn rank(self) -> u8 {
        match self {
            Role::Admin => 4,
            Role::Operator => 3,
            Role::Ci => 2,
            Role::Reader => 1,
            Role::Agent => 0,
        }
    }
}

/// What a token is for: a person's or a pipeline's (`api`), a machine's agent (`agent`), or the
/// `HOTPATCH_ADMIN_TOKEN` bootstrap token (`bootstrap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoStaticStr, EnumString)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum TokenKind {
    /// Created with `POST /v1/tokens`.
    Api,
    /// Bound to one machine (`POST /v1/machines/{id}/agent-token`).
    Agent,
    /// `HOTPATCH_ADMIN_TOKEN`.
    Bootstrap,
}

#[cfg(test)]
mod tests {
    use super::Role::{self, *};

    const ALL: [Role; 5] = [Admin, Operator, Ci, Reader, Agent];

    #[test]
    fn human_roles_form_a_ladder() {
        assert!(Admin.allows(Operator) && Admin.allows(Ci) && Admin.allows(Reader));
        assert!(Operator.allows(Ci) && Operator.allows(Reader) && !Operator.allows(Admin));
        assert!(Ci.allows(Reader) && !Ci.allows(Operator));
        assert!(!Reader.allows(Ci));
    }

    #[test]
    fn agent_role_neither_grants_nor_is_granted_by_human_roles() {
        for r in ALL {
            assert_eq!(Agent.allows(r), r == Agent, "agent allows {r:?}");
            assert_eq!(r.allows(Agent), r == Agent, "{r:?} allows agent");
        }
    }

    #[test]
    fn role_wire_names_round_trip() {
        for r in ALL {
            let s: &'static str = r.into();
            assert_eq!(s.parse::<Role>().unwrap(), r);
            assert_eq!(serde_json::to_value(r).unwrap(), s);
        }
    }
}
