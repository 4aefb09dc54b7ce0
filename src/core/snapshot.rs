//! The objects in scope, indexed so that every reference lookup is a map access, not a scan.
//!
//! Objects are stored defaulted (DESIGN §9: cross-object rules see defaulted objects).
//! `insert`/`remove` keep the indexes in step, so admission can swap in the object under review.
//!
//! Memory (issue 12): each object is one allocation of its own size behind an `Arc` (in the
//! maps' nodes it was inline, and nodes are a third empty), and the indexes' value sets are
//! [`SmallSet`]s, exact for the usual one element.
//!
//! Sharing (issue 13): the maps are `imbl`'s persistent maps, so a clone is a few reference
//! counts and a changed clone shares every untouched node with the original. The catalog
//! publishes each version as an immutable `Arc<Snapshot>` (readers never wait for a writer), and
//! admission looks at "the catalog plus the object under review" by changing a clone, never the
//! shared version. With std maps either would be a copy of every object's index entries.

mod small_set;

use std::collections::BTreeSet;
use std::sync::Arc;

use imbl::{HashMap, OrdMap, OrdSet};

pub use small_set::SmallSet;

use k8s_openapi::api::core::v1::{Service, ServiceAccount};

use crate::api::{AccessPolicy, ExternalService, ObjectSelector, VirtualGateway, list, text};

use super::{Options, mesh_config::Outbound, object::Object, selectors};

/// (namespace, name)
pub type Key = (Name, Name);

/// A namespace or name in a [`Key`]: shared, so that the indexes holding an object's key hold
/// reference counts, not copies (issue 12: the copies were about 3 MB of the 41k catalog).
pub type Name = Arc<str>;

pub fn key(namespace: &str, name: &str) -> Key {
    (Name::from(namespace), Name::from(name))
}

fn meta_key(meta: &impl crate::api::meta::NamespacedName) -> Key {
    let (namespace, name) = meta.namespace_name();
    key(namespace, name)
}

/// An AccessPolicy destination entry of kind EXTERNAL_SERVICE: (policy, index in applyToDestinations).
pub type DestRef = (Key, usize);

#[derive(Default, Clone, Debug)]
pub struct Snapshot {
    cluster: String,
    external_services: OrdMap<Key, Arc<ExternalService>>,
    virtual_gateways: OrdMap<Key, Arc<VirtualGateway>>,
    access_policies: OrdMap<Key, Arc<AccessPolicy>>,
    services: OrdMap<Key, Arc<Service>>,
    service_accounts: OrdMap<Key, Arc<ServiceAccount>>,

    /// (namespace, address) → ExternalServices declaring it (E4).
    es_by_address: HashMap<Key, SmallSet<Key>>,
    /// VirtualGateway key → ExternalServices referencing it (V21, expansion).
    es_by_gateway: HashMap<Key, SmallSet<Key>>,
    /// ExternalService name → AccessPolicy destinations naming it (A14, E26).
    ap_dest_by_name: HashMap<String, SmallSet<DestRef>>,
    /// AccessPolicy destinations of kind EXTERNAL_SERVICE that select by labels only.
    ap_dest_by_labels: OrdSet<DestRef>,
    services_by_ns: HashMap<Name, SmallSet<Name>>,
    service_accounts_by_ns: HashMap<Name, SmallSet<Name>>,
    /// Namespace named by a ServiceAccount or SERVICE destination selector of an AccessPolicy → those
    /// policies ("" = a selector without namespace): which policies a ServiceAccount or Service
    /// change can touch, without scanning every policy.
    ap_by_selected_namespace: HashMap<String, SmallSet<Key>>,
    /// Name → namespaces, for selectors that name an object in any namespace.
    es_namespaces_by_name: HashMap<Name, SmallSet<Name>>,
    sa_namespaces_by_name: HashMap<Name, SmallSet<Name>>,
    /// EgressGuardrails and the namespaces' labels they select by (issue 14).
    guardrails: super::guardrails::Guardrails,
    /// The mesh's outbound traffic policy, when known (M1).
    outbound: Option<Outbound>,
}

impl Snapshot {
    /// Build from already-defaulted objects.
    pub fn new(objects: impl IntoIterator<Item = Object>, opts: &Options) -> Self {
        let mut s = Snapshot {
            cluster: opts.cluster_name.clone(),
            ..Default::default()
        };
        for o in objects {
            s.insert(o);
        }
        s
    }

    /// The mesh's outbound traffic policy: known from a cluster's mesh ConfigMaps (`serve`,
    /// `--kubeconfig`) or `--mesh-config`; `None` for files alone, which do not say which mesh
    /// they go to (M1 then says nothing).
    pub fn outbound(&self) -> Option<&Outbound> {
        self.outbound.as_ref()
    }

    pub fn set_outbound(&mut self, outbound: Option<Outbound>) {
        self.outbound = outbound;
    }

    /// Is an object of the kind, namespace and name of `obj` stored? ([`Snapshot::get`] without
    /// the copy: the live lookup asks it of every AccessPolicy of a list.)
    pub fn has(&self, obj: &Object) -> bool {
        let k = key(obj.namespace(), obj.name());
        match obj {
            Object::ExternalService(_) => self.external_services.contains_key(&k),
            Object::VirtualGateway(_) => self.virtual_gateways.contains_key(&k),
            Object::AccessPolicy(_) => self.access_policies.contains_key(&k),
            Object::Service(_) => self.services.contains_key(&k),
            Object::ServiceAccount(_) => self.service_accounts.contains_key(&k),
        }
    }

    /// The stored object with the kind, namespace and name of `obj`.
    pub fn get(&self, obj: &Object) -> Option<Object> {
        let k = key(obj.namespace(), obj.name());
        match obj {
            Object::ExternalService(_) => self
                .external_services
                .get(&k)
                .map(|o| Object::ExternalService(o.as_ref().clone())),
            Object::VirtualGateway(_) => self
                .virtual_gateways
                .get(&k)
                .map(|o| Object::VirtualGateway(o.as_ref().clone())),
            Object::AccessPolicy(_) => self
                .access_policies
                .get(&k)
                .map(|o| Object::AccessPolicy(o.as_ref().clone())),
            Object::Service(_) => self
                .services
                .get(&k)
                .map(|o| Object::Service(o.as_ref().clone())),
            Object::ServiceAccount(_) => self
                .service_accounts
                .get(&k)
                .map(|o| Object::ServiceAccount(o.as_ref().clone())),
        }
    }

    /// Is this parent in the snapshot?
    pub fn has_parent(&self, p: &crate::core::expand::ParentRef) -> bool {
        use crate::core::object::GlooKind;
        let k = key(&p.namespace, &p.name);
        match p.kind {
            GlooKind::ExternalService => self.external_services.contains_key(&k),
            GlooKind::VirtualGateway => self.virtual_gateways.contains_key(&k),
            GlooKind::AccessPolicy => self.access_policies.contains_key(&k),
        }
    }

    /// Every Gloo object of the snapshot as a parent.
    pub fn parents(&self) -> std::collections::BTreeSet<crate::core::expand::ParentRef> {
        use crate::core::{expand::ParentRef, object::GlooKind};
        let mut out = std::collections::BTreeSet::new();
        for (ns, n) in self.external_services.keys() {
            out.insert(ParentRef::new(GlooKind::ExternalService, ns, n));
        }
        for (ns, n) in self.virtual_gateways.keys() {
            out.insert(ParentRef::new(GlooKind::VirtualGateway, ns, n));
        }
        for (ns, n) in self.access_policies.keys() {
            out.insert(ParentRef::new(GlooKind::AccessPolicy, ns, n));
        }
        out
    }

    /// Objects per kind.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        vec![
            ("ExternalService", self.external_services.len()),
            ("VirtualGateway", self.virtual_gateways.len()),
            ("AccessPolicy", self.access_policies.len()),
            ("Service", self.services.len()),
            ("ServiceAccount", self.service_accounts.len()),
        ]
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The EgressGuardrails and namespace labels (kept apart from the objects: neither is a
    /// parent of companions, and neither has rules of the Gloo kinds).
    pub fn guardrails(&self) -> &super::guardrails::Guardrails {
        &self.guardrails
    }

    pub fn guardrails_mut(&mut self) -> &mut super::guardrails::Guardrails {
        &mut self.guardrails
    }

    /// ExternalServices with their keys, as stored (shared), in key order: the guardrail audit
    /// tells a changed object from an unchanged one by pointer, without comparing content, in
    /// one merge walk over its own sorted map (so the order matters).
    pub fn external_service_entries(&self) -> impl Iterator<Item = (&Key, &Arc<ExternalService>)> {
        self.external_services.iter()
    }

    /// One ExternalService as stored (shared); see `external_service_entries`.
    pub fn external_service_entry(&self, k: &Key) -> Option<&Arc<ExternalService>> {
        self.external_services.get(k)
    }

    /// AccessPolicies with their keys, as stored (shared); see `external_service_entries`.
    pub fn access_policy_entries(&self) -> impl Iterator<Item = (&Key, &Arc<AccessPolicy>)> {
        self.access_policies.iter()
    }

    /// Insert or replace (same kind, namespace and name).
    pub fn insert(&mut self, obj: Object) {
        self.remove(&obj);
        match obj {
            Object::ExternalService(es) => {
                let k = meta_key(&es.metadata);
                for a in list(&es.spec.addresses) {
                    self.es_by_address
                        .entry((k.0.clone(), Name::from(a.as_str())))
                        .or_default()
                        .insert(k.clone());
                }
                for gw in gateway_refs(&es, &self.cluster) {
                    self.es_by_gateway.entry(gw).or_default().insert(k.clone());
                }
                self.es_namespaces_by_name
                    .entry(k.1.clone())
                    .or_default()
                    .insert(k.0.clone());
                self.external_services.insert(k, Arc::new(es));
            }
            Object::VirtualGateway(vg) => {
                self.virtual_gateways
                    .insert(meta_key(&vg.metadata), Arc::new(vg));
            }
            Object::AccessPolicy(ap) => {
                let k = meta_key(&ap.metadata);
                for (i, sel) in external_service_destinations(&ap) {
                    match text(&sel.name) {
                        "" => {
                            self.ap_dest_by_labels.insert((k.clone(), i));
                        }
                        name => {
                            self.ap_dest_by_name
                                .entry(name.to_string())
                                .or_default()
                                .insert((k.clone(), i));
                        }
                    }
                }
                for ns in selected_namespaces(&ap) {
                    self.ap_by_selected_namespace
                        .entry(ns)
                        .or_default()
                        .insert(k.clone());
                }
                self.access_policies.insert(k, Arc::new(ap));
            }
            Object::Service(svc) => {
                let k = meta_key(&svc.metadata);
                self.services_by_ns
                    .entry(k.0.clone())
                    .or_default()
                    .insert(k.1.clone());
                self.services.insert(k, Arc::new(svc));
            }
            Object::ServiceAccount(sa) => {
                let k = meta_key(&sa.metadata);
                self.service_accounts_by_ns
                    .entry(k.0.clone())
                    .or_default()
                    .insert(k.1.clone());
                self.sa_namespaces_by_name
                    .entry(k.1.clone())
                    .or_default()
                    .insert(k.0.clone());
                self.service_accounts.insert(k, Arc::new(sa));
            }
        }
    }

    /// Remove the object with this kind, namespace and name (the rest of `obj` is ignored).
    pub fn remove(&mut self, obj: &Object) {
        let k = key(obj.namespace(), obj.name());
        match obj {
            Object::ExternalService(_) => {
                if let Some(old) = self.external_services.remove(&k) {
                    for a in list(&old.spec.addresses) {
                        remove_from(
                            &mut self.es_by_address,
                            &(k.0.clone(), Name::from(a.as_str())),
                            &k,
                        );
                    }
                    for gw in gateway_refs(&old, &self.cluster) {
                        remove_from(&mut self.es_by_gateway, &gw, &k);
                    }
                    remove_from(&mut self.es_namespaces_by_name, &k.1, &k.0);
                }
            }
            Object::VirtualGateway(_) => {
                self.virtual_gateways.remove(&k);
            }
            Object::AccessPolicy(_) => {
                if let Some(old) = self.access_policies.remove(&k) {
                    for (i, sel) in external_service_destinations(&old) {
                        match text(&sel.name) {
                            "" => {
                                self.ap_dest_by_labels.remove(&(k.clone(), i));
                            }
                            name => remove_from(
                                &mut self.ap_dest_by_name,
                                &name.to_string(),
                                &(k.clone(), i),
                            ),
                        }
                    }
                    for ns in selected_namespaces(&old) {
                        remove_from(&mut self.ap_by_selected_namespace, &ns, &k);
                    }
                }
            }
            Object::Service(_) => {
                if self.services.remove(&k).is_some() {
                    remove_from(&mut self.services_by_ns, &k.0, &k.1);
                }
            }
            Object::ServiceAccount(_) => {
                if self.service_accounts.remove(&k).is_some() {
                    remove_from(&mut self.service_accounts_by_ns, &k.0, &k.1);
                    remove_from(&mut self.sa_namespaces_by_name, &k.1, &k.0);
                }
            }
        }
    }

    /// (namespace, name) of every object of `kind` (an `Object::kind_name`), sorted.
    pub fn keys(&self, kind: &str) -> Vec<Key> {
        match kind {
            "ExternalService" => self.external_services.keys().cloned().collect(),
            "VirtualGateway" => self.virtual_gateways.keys().cloned().collect(),
            "AccessPolicy" => self.access_policies.keys().cloned().collect(),
            "Service" => self.services.keys().cloned().collect(),
            "ServiceAccount" => self.service_accounts.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    pub fn external_service(&self, namespace: &str, name: &str) -> Option<&ExternalService> {
        self.external_services
            .get(&key(namespace, name))
            .map(Arc::as_ref)
    }
    pub fn virtual_gateway(&self, namespace: &str, name: &str) -> Option<&VirtualGateway> {
        self.virtual_gateways
            .get(&key(namespace, name))
            .map(Arc::as_ref)
    }
    pub fn access_policy(&self, namespace: &str, name: &str) -> Option<&AccessPolicy> {
        self.access_policies
            .get(&key(namespace, name))
            .map(Arc::as_ref)
    }
    pub fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        self.services.get(&key(namespace, name)).map(Arc::as_ref)
    }
    pub fn service_account(&self, namespace: &str, name: &str) -> Option<&ServiceAccount> {
        self.service_accounts
            .get(&key(namespace, name))
            .map(Arc::as_ref)
    }

    pub fn external_services(&self) -> impl Iterator<Item = &ExternalService> {
        self.external_services.values().map(Arc::as_ref)
    }
    pub fn virtual_gateways(&self) -> impl Iterator<Item = &VirtualGateway> {
        self.virtual_gateways.values().map(Arc::as_ref)
    }
    pub fn access_policies(&self) -> impl Iterator<Item = &AccessPolicy> {
        self.access_policies.values().map(Arc::as_ref)
    }
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values().map(Arc::as_ref)
    }

    /// ExternalServices in `namespace` (other than `except`) that declare `address` (E4).
    pub fn external_services_with_address(
        &self,
        namespace: &str,
        address: &str,
        except: &Key,
    ) -> Vec<&Key> {
        self.es_by_address
            .get(&key(namespace, address))
            .map(|s| s.iter().filter(|k| *k != except).collect())
            .unwrap_or_default()
    }

    /// ExternalServices whose `virtualGatewayRefs` name this VirtualGateway (local cluster only).
    pub fn external_services_using_gateway(
        &self,
        namespace: &str,
        name: &str,
    ) -> Vec<&ExternalService> {
        self.es_by_gateway
            .get(&key(namespace, name))
            .into_iter()
            .flatten()
            .filter_map(|k| self.external_services.get(k).map(Arc::as_ref))
            .collect()
    }

    /// AccessPolicies with an EXTERNAL_SERVICE destination that selects `es` (in any order of
    /// discovery; sorted by key). Policies with `applyToWorkloads` are skipped: their
    /// destinations are ignored (A4).
    pub fn access_policies_selecting(&self, es: &ExternalService) -> Vec<&AccessPolicy> {
        let name = es.metadata.name.as_deref().unwrap_or("");
        let by_name = self.ap_dest_by_name.get(name).into_iter().flatten();
        let mut keys: BTreeSet<&Key> = BTreeSet::new();
        for (ap_key, i) in by_name.chain(self.ap_dest_by_labels.iter()) {
            if keys.contains(ap_key) {
                continue;
            }
            let Some(ap) = self.access_policies.get(ap_key) else {
                continue;
            };
            if !list(&ap.spec.apply_to_workloads).is_empty() {
                continue;
            }
            let Some(dest) = list(&ap.spec.apply_to_destinations).get(*i) else {
                continue;
            };
            let sel = dest.selector.as_ref().unwrap_or(&ANY);
            if self.selects_external_service(sel, es) {
                keys.insert(ap_key);
            }
        }
        keys.into_iter()
            .filter_map(|k| self.access_policies.get(k).map(Arc::as_ref))
            .collect()
    }

    /// Does an ExternalService destination selector pick `es`? Omitted namespace = any namespace;
    /// a selector for another cluster picks nothing here.
    pub fn selects_external_service(&self, sel: &ObjectSelector, es: &ExternalService) -> bool {
        selectors::is_local_cluster(text(&sel.cluster), &self.cluster)
            && selectors::object_selector_matches(
                sel,
                None,
                es.metadata.namespace.as_deref().unwrap_or("default"),
                es.metadata.name.as_deref().unwrap_or(""),
                es.metadata.labels.as_ref(),
            )
    }

    /// ExternalServices an EXTERNAL_SERVICE destination selector picks (sorted by key).
    pub fn external_services_selected(&self, sel: &ObjectSelector) -> Vec<&ExternalService> {
        if !selectors::is_local_cluster(text(&sel.cluster), &self.cluster) {
            return Vec::new();
        }
        match (text(&sel.namespace), text(&sel.name)) {
            (ns, name) if !ns.is_empty() && !name.is_empty() => self
                .external_service(ns, name)
                .filter(|es| self.selects_external_service(sel, es))
                .into_iter()
                .collect(),
            ("", name) if !name.is_empty() => self
                .es_namespaces_by_name
                .get(name)
                .into_iter()
                .flatten()
                .filter_map(|ns| self.external_service(ns, name))
                .filter(|es| self.selects_external_service(sel, es))
                .collect(),
            _ => self
                .external_services
                .values()
                .map(Arc::as_ref)
                .filter(|es| self.selects_external_service(sel, es))
                .collect(),
        }
    }

    /// Services a `workloads[]` selector picks: by name or by labels matched against the
    /// Service's `spec.selector` (the gateway pods' labels), in the selector's namespace or
    /// `default_namespace` (DESIGN §9 V20).
    pub fn services_selected(
        &self,
        sel: &ObjectSelector,
        default_namespace: &str,
    ) -> Vec<&Service> {
        if !selectors::is_local_cluster(text(&sel.cluster), &self.cluster) {
            return Vec::new();
        }
        let ns = match text(&sel.namespace) {
            "" => default_namespace,
            ns => ns,
        };
        let pod_labels =
            |svc: &Service| svc.spec.as_ref().and_then(|s| s.selector.as_ref()).cloned();
        match text(&sel.name) {
            "" => self
                .services_by_ns
                .get(ns)
                .into_iter()
                .flatten()
                .filter_map(|name| self.service(ns, name))
                .filter(|svc| {
                    selectors::labels_match(sel.labels.as_ref(), pod_labels(svc).as_ref())
                })
                .collect(),
            name => self
                .service(ns, name)
                .filter(|svc| {
                    selectors::labels_match(sel.labels.as_ref(), pod_labels(svc).as_ref())
                })
                .into_iter()
                .collect(),
        }
    }

    /// AccessPolicies with a ServiceAccount or SERVICE selector that may pick an object in
    /// `namespace` (the selector names that namespace, or none). A superset: callers match.
    pub fn access_policies_selecting_in(&self, namespace: &str) -> Vec<&AccessPolicy> {
        let mut keys: BTreeSet<&Key> = BTreeSet::new();
        for ns in [namespace, ""] {
            keys.extend(self.ap_by_selected_namespace.get(ns).into_iter().flatten());
        }
        keys.into_iter()
            .filter_map(|k| self.access_policies.get(k).map(Arc::as_ref))
            .collect()
    }

    /// ServiceAccounts an identity selector picks (omitted namespace = any namespace).
    pub fn service_accounts_selected(&self, sel: &ObjectSelector) -> Vec<&ServiceAccount> {
        if !selectors::is_local_cluster(text(&sel.cluster), &self.cluster) {
            return Vec::new();
        }
        let matches = |sa: &&ServiceAccount| {
            selectors::object_selector_matches(
                sel,
                None,
                sa.metadata.namespace.as_deref().unwrap_or("default"),
                sa.metadata.name.as_deref().unwrap_or(""),
                sa.metadata.labels.as_ref(),
            )
        };
        match (text(&sel.namespace), text(&sel.name)) {
            (ns, name) if !ns.is_empty() && !name.is_empty() => self
                .service_account(ns, name)
                .filter(matches)
                .into_iter()
                .collect(),
            ("", name) if !name.is_empty() => self
                .sa_namespaces_by_name
                .get(name)
                .into_iter()
                .flatten()
                .filter_map(|ns| self.service_account(ns, name))
                .filter(matches)
                .collect(),
            (ns, _) if !ns.is_empty() => self
                .service_accounts_by_ns
                .get(ns)
                .into_iter()
                .flatten()
                .filter_map(|n| self.service_account(ns, n))
                .filter(matches)
                .collect(),
            _ => self
                .service_accounts
                .values()
                .map(Arc::as_ref)
                .filter(matches)
                .collect(),
        }
    }
}

/// The local-cluster VirtualGateway keys an ExternalService routes through (defaulted refs).
fn gateway_refs(es: &ExternalService, cluster: &str) -> Vec<Key> {
    let own_ns = es.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = Vec::new();
    for port in list(&es.spec.ports) {
        let Some(routes) = &port.egress_gateway_routes else {
            continue;
        };
        for r in list(&routes.virtual_gateway_refs) {
            if !selectors::is_local_cluster(text(&r.cluster), cluster) {
                continue;
            }
            let ns = match text(&r.namespace) {
                "" => own_ns,
                ns => ns,
            };
            out.push(key(ns, text(&r.name)));
        }
    }
    out
}

/// The ServiceAccount selectors of every authorization entry of an AccessPolicy
/// (`allowedClients[].serviceAccountSelector`).
pub fn identity_selectors(ap: &AccessPolicy) -> Vec<&ObjectSelector> {
    let Some(config) = &ap.spec.config else {
        return Vec::new();
    };
    config
        .authz
        .as_deref()
        .into_iter()
        .chain(list(&config.authz_list))
        .flat_map(|e| list(&e.allowed_clients))
        .filter_map(|c| c.service_account_selector.as_ref())
        .collect()
}

/// The selectors of `applyToDestinations` entries of kind SERVICE: the policies that read
/// Services (`applyToWorkloads` select pods by label and read none).
pub fn service_selectors(ap: &AccessPolicy) -> Vec<&ObjectSelector> {
    list(&ap.spec.apply_to_destinations)
        .iter()
        .filter(|d| text(&d.kind) == "SERVICE")
        .map(|d| d.selector.as_ref().unwrap_or(&ANY))
        .collect()
}

/// The namespaces an AccessPolicy's ServiceAccount and workload selectors name ("" for none).
fn selected_namespaces(ap: &AccessPolicy) -> BTreeSet<String> {
    identity_selectors(ap)
        .into_iter()
        .chain(service_selectors(ap))
        .map(|sel| text(&sel.namespace).to_string())
        .collect()
}

/// `applyToDestinations` entries of kind EXTERNAL_SERVICE, with their index.
pub fn external_service_destinations(ap: &AccessPolicy) -> Vec<(usize, &ObjectSelector)> {
    list(&ap.spec.apply_to_destinations)
        .iter()
        .enumerate()
        .filter(|(_, d)| text(&d.kind) == "EXTERNAL_SERVICE")
        .map(|(i, d)| (i, d.selector.as_ref().unwrap_or(&ANY)))
        .collect()
}

/// An omitted selector selects everything (Gloo's ObjectSelector semantics).
static ANY: ObjectSelector = ObjectSelector {
    labels: None,
    name: None,
    namespace: None,
    cluster: None,
    workspace: None,
};

fn remove_from<K: std::hash::Hash + Eq + Clone, V: Ord + Clone>(
    map: &mut HashMap<K, SmallSet<V>>,
    k: &K,
    v: &V,
) {
    if let Some(set) = map.get_mut(k) {
        set.remove(v);
        if set.is_empty() {
            map.remove(k);
        }
    }
}
