//! The firewall rules of the network faults between nodes, as text for `nft -f -`
//! and `iptables-restore --noflush` (pure: unit-tested without a cluster).
//!
//! Every nft rule of dualwrite lives in one table per namespace, `inet dualwrite`;
//! each fault owns two base chains there (`<id>_in`, `<id>_out`), so healing one
//! fault removes only its chains, and removing the table heals them all. A drop in
//! any base chain drops the packet, so faults on the same node add up.
//!
//! Delays are the exception: this kernel has no nft `queue` statement (nor `tc
//! netem`), only iptables' NFQUEUE target, so a delay is an iptables chain in the
//! namespace's `ip filter` table. Nothing else uses the cluster's namespaces, so
//! `reset` deletes that table as well.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::Ipv4Addr;

use super::state::{ClusterState, NodeId};
use super::{NodeFault, Partition};

pub const NFT_TABLE: &str = "dualwrite";

/// The rules one fault puts in one namespace: nft rule bodies (match + verdict).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NodeRules {
    pub input: Vec<String>,
    pub output: Vec<String>,
}

/// Which packets a delay sends to the delayer in one namespace.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DelayRules {
    /// Packets leaving for these addresses.
    pub to: Vec<Ipv4Addr>,
    /// Packets arriving from these addresses.
    pub from: Vec<Ipv4Addr>,
}

fn set(addrs: &[Ipv4Addr]) -> String {
    let list: Vec<String> = addrs.iter().map(Ipv4Addr::to_string).collect();
    format!("{{ {} }}", list.join(", "))
}

fn addrs(state: &ClusterState, ids: impl IntoIterator<Item = NodeId>) -> Vec<Ipv4Addr> {
    ids.into_iter()
        .filter_map(|id| state.node(id).ok().map(|n| n.addr))
        .collect()
}

/// The nft rules of a network fault, per namespace node (empty for kill, pause, delay).
/// Only node addresses are matched: clients and Toxiproxy (the bridge's host
/// address) still reach every node, so a cut node still answers its own clients.
pub fn nft_rules(state: &ClusterState, fault: &NodeFault) -> BTreeMap<NodeId, NodeRules> {
    let all = state.node_ids();
    let mut out: BTreeMap<NodeId, NodeRules> = BTreeMap::new();
    match fault {
        NodeFault::Partition(Partition::Groups(groups)) => {
            for (g, group) in groups.iter().enumerate() {
                let others: Vec<NodeId> = groups
                    .iter()
                    .enumerate()
                    .filter(|(h, _)| *h != g)
                    .flat_map(|(_, ids)| ids.iter().copied())
                    .collect();
                let others = set(&addrs(state, others));
                for id in group {
                    // Both ends drop: the cut holds even if one namespace's rules
                    // were removed by hand.
                    let r = out.entry(*id).or_default();
                    r.input.push(format!("ip saddr {others} drop"));
                    r.output.push(format!("ip daddr {others} drop"));
                }
            }
        }
        NodeFault::Partition(Partition::OneWay { from, to }) => {
            // Cassandra sends every message, responses and gossip acks included, on
            // a connection the sender opened to the receiver's storage port. Cutting
            // the connections `from` opens to `to` (both directions of them, or TCP
            // would still carry the data) stops exactly the messages from `from` to
            // `to`; `to`'s own connections to `from` keep working.
            let (Ok(src), Ok(dst)) = (state.node(*from), state.node(*to)) else {
                return out;
            };
            let r = out.entry(*to).or_default();
            r.input.push(format!(
                "ip saddr {} tcp dport {} drop",
                src.addr, dst.storage_port
            ));
            r.output.push(format!(
                "ip daddr {} tcp sport {} drop",
                src.addr, dst.storage_port
            ));
        }
        NodeFault::Loss { nodes, percent } => {
            // Each packet between two nodes meets the rule once: at the receiver's
            // input when the receiver is faulted, else at the sender's output.
            for id in nodes {
                let from_all: Vec<NodeId> = all.iter().copied().filter(|n| n != id).collect();
                let to_unfaulted: Vec<NodeId> = from_all
                    .iter()
                    .copied()
                    .filter(|n| !nodes.contains(n))
                    .collect();
                let r = out.entry(*id).or_default();
                let drop = format!("numgen random mod 100 < {percent} drop");
                r.input
                    .push(format!("ip saddr {} {drop}", set(&addrs(state, from_all))));
                if !to_unfaulted.is_empty() {
                    r.output.push(format!(
                        "ip daddr {} {drop}",
                        set(&addrs(state, to_unfaulted))
                    ));
                }
            }
        }
        NodeFault::Delay { .. } | NodeFault::Kill(_) | NodeFault::Pause(_) => {}
    }
    out
}

/// Which packets a delay queues, per faulted node; the same once-per-packet rule as loss.
pub fn delay_rules(state: &ClusterState, nodes: &[NodeId]) -> BTreeMap<NodeId, DelayRules> {
    let all = state.node_ids();
    nodes
        .iter()
        .map(|id| {
            let others: Vec<NodeId> = all.iter().copied().filter(|n| n != id).collect();
            let from: Vec<NodeId> = others
                .iter()
                .copied()
                .filter(|n| !nodes.contains(n))
                .collect();
            (
                *id,
                DelayRules {
                    to: addrs(state, others),
                    from: addrs(state, from),
                },
            )
        })
        .collect()
}

fn chain(id: &str, dir: &str) -> String {
    format!("{id}_{dir}")
}

fn hook(dir: &str) -> &'static str {
    if dir == "in" { "input" } else { "output" }
}

/// `nft -f -` input adding one fault's chains and rules (one atomic transaction).
pub fn nft_apply_script(id: &str, rules: &NodeRules) -> String {
    let mut s = format!("add table inet {NFT_TABLE}\n");
    for (dir, list) in [("in", &rules.input), ("out", &rules.output)] {
        if list.is_empty() {
            continue;
        }
        let c = chain(id, dir);
        let _ = writeln!(
            s,
            "add chain inet {NFT_TABLE} {c} {{ type filter hook {} priority 0; policy accept; }}",
            hook(dir)
        );
        for r in list {
            let _ = writeln!(s, "add rule inet {NFT_TABLE} {c} {r}");
        }
    }
    s
}

/// `nft -f -` input removing one fault's chains. Idempotent: each chain is declared
/// (a no-op when it exists) before it is flushed and deleted, so healing twice, or a
/// fault that half-applied, is not an error.
pub fn nft_heal_script(id: &str) -> String {
    let mut s = format!("add table inet {NFT_TABLE}\n");
    for dir in ["in", "out"] {
        let c = chain(id, dir);
        let _ = writeln!(
            s,
            "add chain inet {NFT_TABLE} {c} {{ type filter hook {} priority 0; policy accept; }}",
            hook(dir)
        );
        let _ = writeln!(s, "flush chain inet {NFT_TABLE} {c}");
        let _ = writeln!(s, "delete chain inet {NFT_TABLE} {c}");
    }
    s
}

/// iptables chain names of a delay (at most 28 characters).
fn ipt_chain(id: &str, dir: &str) -> String {
    format!("{id}_{}", if dir == "in" { "i" } else { "o" })
}

/// `iptables-restore --noflush` input sending a delay's packets to `queue`.
/// `--queue-bypass`: should the delayer die, packets pass instead of being dropped.
pub fn iptables_apply_script(id: &str, queue: u16, rules: &DelayRules) -> String {
    let mut s = String::from("*filter\n");
    for (dir, list, flag, parent) in [
        ("out", &rules.to, "-d", "OUTPUT"),
        ("in", &rules.from, "-s", "INPUT"),
    ] {
        let c = ipt_chain(id, dir);
        let _ = writeln!(s, ":{c} - [0:0]");
        for a in list.iter() {
            let _ = writeln!(
                s,
                "-A {c} {flag} {a}/32 -j NFQUEUE --queue-num {queue} --queue-bypass"
            );
        }
        let _ = writeln!(s, "-A {parent} -j {c}");
    }
    s.push_str("COMMIT\n");
    s
}

/// `iptables-restore --noflush` input removing a delay's chains.
pub fn iptables_heal_script(id: &str) -> String {
    let mut s = String::from("*filter\n");
    for (dir, parent) in [("out", "OUTPUT"), ("in", "INPUT")] {
        let c = ipt_chain(id, dir);
        let _ = writeln!(s, "-D {parent} -j {c}\n-F {c}\n-X {c}");
    }
    s.push_str("COMMIT\n");
    s
}

/// The iptables chains a delay with this id creates (to tell whether it is gone).
pub fn iptables_chains(id: &str) -> [String; 2] {
    [ipt_chain(id, "out"), ipt_chain(id, "in")]
}

#[cfg(test)]
mod tests {
    use super::super::state::tests::sample;
    use super::*;

    fn n(i: u8) -> NodeId {
        NodeId::new(i).unwrap()
    }

    #[test]
    fn isolating_a_node_cuts_it_from_the_others_at_both_ends() {
        let s = sample();
        let rules = nft_rules(&s, &NodeFault::Partition(Partition::isolate(n(3), &s)));
        assert_eq!(rules.len(), 3);
        assert_eq!(
            rules[&n(3)].input,
            ["ip saddr { 10.77.0.11, 10.77.0.12 } drop"]
        );
        assert_eq!(
            rules[&n(3)].output,
            ["ip daddr { 10.77.0.11, 10.77.0.12 } drop"]
        );
        // The majority side drops only the minority: 1 and 2 still talk.
        assert_eq!(rules[&n(1)].input, ["ip saddr { 10.77.0.13 } drop"]);
        assert_eq!(rules[&n(2)].output, ["ip daddr { 10.77.0.13 } drop"]);
    }

    #[test]
    fn a_one_way_partition_cuts_the_connections_the_sender_opens() {
        let s = sample();
        let rules = nft_rules(
            &s,
            &NodeFault::Partition(Partition::OneWay {
                from: n(3),
                to: n(1),
            }),
        );
        assert_eq!(rules.keys().copied().collect::<Vec<_>>(), [n(1)]);
        assert_eq!(
            rules[&n(1)].input,
            ["ip saddr 10.77.0.13 tcp dport 7000 drop"]
        );
        assert_eq!(
            rules[&n(1)].output,
            ["ip daddr 10.77.0.13 tcp sport 7000 drop"]
        );
    }

    #[test]
    fn loss_meets_each_packet_once() {
        let s = sample();
        // One node: everything it receives from, and sends to, the others.
        let one = nft_rules(
            &s,
            &NodeFault::Loss {
                nodes: vec![n(3)],
                percent: 30,
            },
        );
        assert_eq!(
            one[&n(3)].input,
            ["ip saddr { 10.77.0.11, 10.77.0.12 } numgen random mod 100 < 30 drop"]
        );
        assert_eq!(
            one[&n(3)].output,
            ["ip daddr { 10.77.0.11, 10.77.0.12 } numgen random mod 100 < 30 drop"]
        );
        // All nodes: only at the receivers, so 1 -> 2 is not dropped twice.
        let all = nft_rules(
            &s,
            &NodeFault::Loss {
                nodes: vec![n(1), n(2), n(3)],
                percent: 5,
            },
        );
        for id in [n(1), n(2), n(3)] {
            assert_eq!(all[&id].input.len(), 1);
            assert!(all[&id].output.is_empty(), "{:?}", all[&id]);
        }
    }

    #[test]
    fn nft_scripts_add_and_remove_one_faults_chains() {
        let rules = NodeRules {
            input: vec!["ip saddr { 10.77.0.11 } drop".into()],
            output: vec![],
        };
        assert_eq!(
            nft_apply_script("dw7_1", &rules),
            "add table inet dualwrite\n\
             add chain inet dualwrite dw7_1_in { type filter hook input priority 0; policy accept; }\n\
             add rule inet dualwrite dw7_1_in ip saddr { 10.77.0.11 } drop\n"
        );
        let heal = nft_heal_script("dw7_1");
        assert!(heal.contains(
            "flush chain inet dualwrite dw7_1_in\ndelete chain inet dualwrite dw7_1_in\n"
        ));
        assert!(heal.contains("delete chain inet dualwrite dw7_1_out\n"));
    }

    #[test]
    fn delays_queue_each_packet_once() {
        let s = sample();
        let one = delay_rules(&s, &[n(3)]);
        assert_eq!(
            one[&n(3)],
            DelayRules {
                to: vec![Ipv4Addr::new(10, 77, 0, 11), Ipv4Addr::new(10, 77, 0, 12)],
                from: vec![Ipv4Addr::new(10, 77, 0, 11), Ipv4Addr::new(10, 77, 0, 12)],
            }
        );
        let two = delay_rules(&s, &[n(1), n(3)]);
        assert_eq!(two[&n(1)].from, vec![Ipv4Addr::new(10, 77, 0, 12)]);
        assert_eq!(two[&n(3)].to.len(), 2);
        let script = iptables_apply_script("dw7_2", 42, &one[&n(3)]);
        assert_eq!(
            script,
            "*filter\n:dw7_2_o - [0:0]\n\
             -A dw7_2_o -d 10.77.0.11/32 -j NFQUEUE --queue-num 42 --queue-bypass\n\
             -A dw7_2_o -d 10.77.0.12/32 -j NFQUEUE --queue-num 42 --queue-bypass\n\
             -A OUTPUT -j dw7_2_o\n:dw7_2_i - [0:0]\n\
             -A dw7_2_i -s 10.77.0.11/32 -j NFQUEUE --queue-num 42 --queue-bypass\n\
             -A dw7_2_i -s 10.77.0.12/32 -j NFQUEUE --queue-num 42 --queue-bypass\n\
             -A INPUT -j dw7_2_i\nCOMMIT\n"
        );
        assert_eq!(
            iptables_heal_script("dw7_2"),
            "*filter\n-D OUTPUT -j dw7_2_o\n-F dw7_2_o\n-X dw7_2_o\n\
             -D INPUT -j dw7_2_i\n-F dw7_2_i\n-X dw7_2_i\nCOMMIT\n"
        );
    }
}
