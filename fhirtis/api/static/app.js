// fhirtis clinician page: a SMART on FHIR app (EHR launch, authorization code + PKCE S256).
// Plain JavaScript, no build step, no third-party code. Data is only ever put into the page
// with textContent and attributes, never as HTML.
"use strict";

(() => {
  const SESSION_KEY = "fhirtis.session";
  const LAUNCH_PREFIX = "fhirtis.launch.";
  const LAUNCH_MAX_AGE_MS = 10 * 60 * 1000;

  const FHIRTIS = "http://fhirtis.org/fhir/CodeSystem/fhirtis";
  const EXT = "http://fhirtis.org/fhir/StructureDefinition/";
  const SVG_NS = "http://www.w3.org/2000/svg";

  // The clinical numbers (category thresholds, measure maxima, maximum rates, dose target) come
  // from the service (config.json's "clinical"), never from this file: one home per rule.
  let CLINICAL = null;
  const clinical = () => {
    if (!CLINICAL) throw new AppError("The fhirtis service did not give the page its clinical settings.");
    return CLINICAL;
  };
  const CATEGORIES = ["none", "minimal", "moderate", "major"];
  const CATEGORY_LABEL = {
    none: "No improvement",
    minimal: "Minimal improvement",
    moderate: "Moderate improvement",
    major: "Major improvement",
  };
  const MEASURES = [
    { key: "pga", name: "Physician global activity", abbr: "PGA" },
    { key: "ptga", name: "Patient global activity", abbr: "PtGA" },
    { key: "mmt8", name: "Manual muscle testing, 8 groups", abbr: "MMT-8" },
    { key: "haq", name: "Physical function (HAQ / CHAQ)", abbr: "HAQ" },
    { key: "enzyme", name: "Most abnormal muscle enzyme", abbr: "Enzyme" },
    { key: "extramuscular", name: "Extramuscular activity (MDAAT)", abbr: "Extramuscular" },
  ];
  const RISK_FACTOR_LABEL = {
    "advanced-age": "Advanced age",
    immobilisation: "Prolonged immobilisation",
    hypercoagulable: "Hypercoagulable condition",
    "thrombosis-history": "History of venous or arterial thrombosis",
    estrogen: "Estrogen use",
    "central-venous-catheter": "Indwelling central venous catheter",
    hyperviscosity: "Hyperviscosity",
    cardiovascular: "Cardiovascular risk factors",
    obesity: "Obesity",
    malignancy: "Active malignancy",
    inflammation: "Poorly controlled systemic inflammation",
  };
  const BASIS_LABEL = { actual: "actual", ideal: "ideal (Devine)", adjusted: "adjusted" };
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
    "Dec"];

  class AppError extends Error {
    constructor(message, { issues = [], relaunch = false } = {}) {
      super(message);
      this.issues = issues;
      this.relaunch = relaunch;
    }
  }

  // -- small DOM helpers ------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function s(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.setAttribute("class", value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function $(id) {
    return document.getElementById(id);
  }

  function setStatus(text, kind = "info") {
    const status = $("status");
    if (!status) return;
    status.className = `status status-${kind}`;
    status.replaceChildren(text instanceof Node ? text : document.createTextNode(text));
    status.hidden = false;
  }

  // -- formatting --------------------------------------------------------------------------

  function num(value, digits = 1) {
    if (value === null || value === undefined || Number.isNaN(value)) return "—";
    const rounded = Number(value.toFixed(digits));
    return String(rounded);
  }

  // A value shown beside a limit it differs from (a rate beside its maximum): as num() gives
  // it, or, where those places would show it equal to the limit (4.004 beside 4), to 4 places
  // rounded away from the limit, as the service writes it: never "4, above the maximum 4".
  function numBeside(value, limit, digits = 2) {
    const shown = num(value, digits);
    if (value === null || limit === null || value === limit || shown !== num(limit, digits)) return shown;
    const away = value > limit ? Math.ceil : Math.floor;
    return String(away(Math.round(value * 1e8) / 1e4) / 1e4);
  }

  // A measure's improvement percent: to 1 place, or as the service wrote it (4 places) where 1
  // place would show a whole number that it is not: the score bands' edges are whole percents
  // (">5–15"), so 5.04 is never shown "5", the edge of the band below.
  function percent(value) {
    const shown = num(value);
    if (shown === "—" || !Number.isInteger(Number(shown)) || Number(shown) === value) return shown;
    return String(value);
  }

  // How far a rate is above its maximum, in percent: never "+0 %" for a rate above it.
  function overBy(rate, max) {
    const percent = (rate / max - 1) * 100;
    return percent > 0 && percent < 0.5 ? "+<1 %" : `+${Math.round(percent)} %`;
  }

  // A calendar date as recorded (the first 10 characters of a FHIR date or dateTime), so that
  // no time zone moves it to another day.
  function day(text) {
    return typeof text === "string" ? text.slice(0, 10) : null;
  }

  function dayValue(text) {
    const d = day(text);
    if (!d || !/^\d{4}-\d{2}-\d{2}$/.test(d)) return null;
    const [y, m, dd] = d.split("-").map(Number);
    return Date.UTC(y, m - 1, dd);
  }

  function fmtDate(text, withYear = true) {
    const d = day(text);
    if (!d || !/^\d{4}-\d{2}-\d{2}$/.test(d)) return text || "—";
    const [y, m, dd] = d.split("-").map(Number);
    return withYear ? `${dd} ${MONTHS[m - 1]} ${y}` : `${dd} ${MONTHS[m - 1]}`;
  }

  function fmtRange(start, end) {
    if (!start) return "—";
    if (!end || day(start) === day(end)) return fmtDate(start);
    const [y0, m0, d0] = day(start).split("-").map(Number);
    const [y1, m1, d1] = day(end).split("-").map(Number);
    if (y0 === y1 && m0 === m1) return `${d0}–${d1} ${MONTHS[m0 - 1]} ${y0}`;
    if (y0 === y1) return `${d0} ${MONTHS[m0 - 1]} – ${d1} ${MONTHS[m1 - 1]} ${y0}`;
    return `${fmtDate(start)} – ${fmtDate(end)}`;
  }

  function weeksBetween(a, b) {
    const x = dayValue(a);
    const y = dayValue(b);
    if (x === null || y === null) return null;
    return Math.round((y - x) / (7 * 86400000));
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
  }

  function stripHistory(ref) {
    return typeof ref === "string" ? ref.split("/_history")[0] : ref;
  }

  function prettyCode(code) {
    return String(code || "").replace(/-/g, " ");
  }

  // "deep-vein-thrombosis" → "Deep vein thrombosis"; free text is left as written.
  function humanize(text) {
    const t = String(text || "");
    if (!/^[a-z0-9-]+$/.test(t)) return t;
    const words = prettyCode(t);
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  // -- SMART App Launch (EHR launch) ---------------------------------------------------------

  function base64url(bytes) {
    let text = "";
    for (const b of bytes) text += String.fromCharCode(b);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function randomToken(size = 32) {
    return base64url(crypto.getRandomValues(new Uint8Array(size)));
  }

  async function pkceChallenge(verifier) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
    return base64url(new Uint8Array(digest));
  }

  function normalizeBase(url) {
    const u = new URL(url);
    return `${u.protocol}//${u.host.toLowerCase()}${u.pathname.replace(/\/+$/, "")}`;
  }

  function appBase() {
    // The folder of this page (…/app/), which is also the registered redirect URI.
    return new URL(".", window.location.href).href;
  }

  async function fetchJson(url, options, what) {
    let response;
    try {
      response = await fetch(url, options);
    } catch {
      throw new AppError(`Could not reach ${what}.`);
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    return { response, body };
  }

  async function loadConfig() {
    const { response, body } = await fetchJson(new URL("config.json", appBase()), {
      headers: { Accept: "application/json" },
    }, "the fhirtis service");
    if (!response.ok || !body || typeof body.client_id !== "string") {
      throw new AppError("The fhirtis service did not give the page its configuration.");
    }
    return body;
  }

  // SMART 2.0: a server that advertises permission-v2 but not permission-v1 is asked for v2
  // scopes (patient/*.rs); any other keeps the v1 request (patient/*.read).
  function scopeFor(smart, scope) {
    const caps = Array.isArray(smart.capabilities) ? smart.capabilities : [];
    if (!caps.includes("permission-v2") || caps.includes("permission-v1")) return scope;
    return scope
      .split(" ")
      .map((s) => s.replace(/^((?:patient|user|system)\/[^.]+)\.read$/, "$1.rs"))
      .join(" ");
  }

  async function startLaunch(iss, launch) {
    // A new launch ends the session this tab held (an EHR may open the next chart's launch in
    // the same tab or frame): should this one not complete, a reload must never show the
    // earlier patient.
    sessionStorage.removeItem(SESSION_KEY);
    setStatus("Connecting to the EHR…");
    if (!window.crypto || !crypto.subtle) {
      throw new AppError("This page must be served over HTTPS (the browser's crypto is needed).");
    }
    let server;
    try {
      server = normalizeBase(iss);
    } catch {
      throw new AppError("The launch did not give a valid FHIR server address (iss).");
    }
    const config = await loadConfig();
    const allowed = (config.fhir_servers || []).map(normalizeBase);
    if (!allowed.includes(server)) {
      throw new AppError(
        `This fhirtis service is not set up for the FHIR server ${server}. Ask your ` +
          "administrator to add it to the service's allowed FHIR servers.",
      );
    }
    const { response, body: smart } = await fetchJson(
      `${server}/.well-known/smart-configuration`,
      { headers: { Accept: "application/json" } },
      "the EHR's SMART configuration",
    );
    if (!response.ok || !smart || !smart.authorization_endpoint || !smart.token_endpoint) {
      throw new AppError("The EHR did not publish a usable SMART configuration.");
    }
    const methods = smart.code_challenge_methods_supported;
    if (Array.isArray(methods) && !methods.includes("S256")) {
      throw new AppError("The EHR's authorization server does not support PKCE (S256).");
    }
    const verifier = randomToken(48);
    const state = randomToken(24);
    const redirectUri = appBase();
    sessionStorage.setItem(
      LAUNCH_PREFIX + state,
      JSON.stringify({
        iss: server,
        tokenEndpoint: smart.token_endpoint,
        verifier,
        redirectUri,
        clientId: config.client_id,
        created: Date.now(),
      }),
    );
    const target = new URL(smart.authorization_endpoint);
    const query = {
      response_type: "code",
      client_id: config.client_id,
      redirect_uri: redirectUri,
      launch,
      scope: scopeFor(smart, config.scope || "launch openid fhirUser patient/*.read"),
      state,
      // SMART App Launch: in an EHR launch, aud is the launch's iss value, as the EHR sent it
      aud: iss,
      code_challenge: await pkceChallenge(verifier),
      code_challenge_method: "S256",
    };
    for (const [key, value] of Object.entries(query)) target.searchParams.set(key, value);
    setStatus("Signing in with the EHR…");
    window.location.assign(target.href);
  }

  // The code and state (or the error) leave the address bar and the history at once, whatever
  // comes of them: a reload or a copied link never carries a spent code.
  function dropLaunchQuery() {
    window.history.replaceState(null, "", appBase());
  }

  const NOT_STARTED_HERE = "This sign-in was not started here or has expired.";

  // The launch this tab started under ``state`` (single use: removed whatever comes of it), or
  // null when it started none under it or it has expired.
  function takeLaunch(state) {
    const key = LAUNCH_PREFIX + state;
    const saved = sessionStorage.getItem(key);
    sessionStorage.removeItem(key);
    const launch = saved ? JSON.parse(saved) : null;
    return launch && Date.now() - launch.created <= LAUNCH_MAX_AGE_MS ? launch : null;
  }

  async function finishLaunch(code, state) {
    setStatus("Signing in with the EHR…");
    dropLaunchQuery();
    const launch = takeLaunch(state);
    if (!launch) {
      throw new AppError(NOT_STARTED_HERE, { relaunch: true });
    }
    const form = new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: launch.redirectUri,
      client_id: launch.clientId,
      code_verifier: launch.verifier,
    });
    const { response, body } = await fetchJson(launch.tokenEndpoint, {
      method: "POST",
      headers: {
        "Content-Type": "application/x-www-form-urlencoded",
        Accept: "application/json",
      },
      body: form.toString(),
    }, "the EHR's token endpoint");
    if (!response.ok || !body || !body.access_token) {
      const why = body && (body.error_description || body.error);
      throw new AppError(`The EHR did not grant access${why ? `: ${why}` : "."}`, {
        relaunch: true,
      });
    }
    if (!body.patient) {
      throw new AppError("The EHR did not say which patient is open (no patient context).", {
        relaunch: true,
      });
    }
    const expiresIn = Number(body.expires_in) || 3600;
    sessionStorage.setItem(
      SESSION_KEY,
      JSON.stringify({
        iss: launch.iss,
        accessToken: body.access_token,
        patient: String(body.patient),
        scope: body.scope || "",
        // SMART App Launch: true (or not said) when the EHR shows no patient banner of its own
        needPatientBanner: body.need_patient_banner !== false,
        expiresAt: Date.now() + expiresIn * 1000,
      }),
    );
    // Drop code and state from the address bar and the history.
    window.history.replaceState(null, "", launch.redirectUri);
  }

  function readSession() {
    try {
      const session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
      return session && session.accessToken && session.patient && session.iss ? session : null;
    } catch {
      return null;
    }
  }

  // -- the fhirtis operation ------------------------------------------------------------------

  async function evaluate(session) {
    if (Date.now() > session.expiresAt) {
      sessionStorage.removeItem(SESSION_KEY);
      throw new AppError("The EHR session has expired.", { relaunch: true });
    }
    const url = new URL(
      `../Patient/${encodeURIComponent(session.patient)}/$myositis-evaluate`,
      appBase(),
    );
    const { response, body } = await fetchJson(url, {
      method: "POST",
      headers: {
        Authorization: `Bearer ${session.accessToken}`,
        "X-FHIR-Server": session.iss,
        Accept: "application/fhir+json",
        "Content-Type": "application/fhir+json",
      },
      body: JSON.stringify({ resourceType: "Parameters", parameter: [] }),
    }, "the fhirtis service");
    if (!response.ok || !body || body.resourceType !== "Bundle") {
      const issues = body && body.resourceType === "OperationOutcome" ? body.issue || [] : [];
      const first = issues.find((i) => i.severity === "error" || i.severity === "fatal");
      const relaunch = response.status === 401;
      if (relaunch) sessionStorage.removeItem(SESSION_KEY);
      throw new AppError(
        first && first.diagnostics
          ? `The evaluation failed: ${first.diagnostics}`
          : `The evaluation failed (HTTP ${response.status}).`,
        { issues: issues.filter((i) => i !== first), relaunch },
      );
    }
    return body;
  }

  // -- reading the Bundle ------------------------------------------------------------------

  function code(resource) {
    const coding = resource && resource.code && resource.code.coding;
    const hit = (coding || []).find((c) => c.system === FHIRTIS) || (coding || [])[0];
    return hit ? hit.code : null;
  }

  function componentMap(obs) {
    const out = {};
    for (const c of obs.component || []) {
      const k = code(c);
      if (k) out[k] = c;
    }
    return out;
  }

  function qty(element) {
    return element && element.valueQuantity && typeof element.valueQuantity.value === "number"
      ? element.valueQuantity.value
      : null;
  }

  function absentText(element) {
    const dar = element && element.dataAbsentReason;
    return dar ? dar.text || (dar.coding && dar.coding[0] && dar.coding[0].code) || "missing" : null;
  }

  function ext(resource, name) {
    return (resource.extension || []).filter((e) => e.url === EXT + name);
  }

  function parsePolicy(resources) {
    for (const r of resources) {
      for (const n of r.note || []) {
        const text = n.text || "";
        if (text.startsWith("fhirtis policy: ")) {
          const policy = {};
          for (const pair of text.slice(16).split("; ")) {
            const [k, v] = pair.split("=");
            if (k) policy[k] = v;
          }
          return policy;
        }
      }
    }
    return {};
  }

  function readTis(obs) {
    const population = (code({ code: obs.method }) || "adult-criteria").replace("-criteria", "");
    const interp = (obs.interpretation || [])[0] || {};
    const category = interp.coding && interp.coding[0] ? interp.coding[0].code : null;
    const comps = componentMap(obs);
    const measures = {};
    for (const m of MEASURES) {
      const imp = comps[`improvement-${m.key}`];
      const sc = comps[`score-${m.key}`];
      measures[m.key] = {
        improvement: qty(imp),
        score: qty(sc),
        absent: absentText(sc) || absentText(imp),
      };
    }
    const range = obs.valueRange;
    const responder = comps.responder;
    return {
      baseline: obs.effectivePeriod && obs.effectivePeriod.start,
      date: obs.effectivePeriod && obs.effectivePeriod.end,
      population: clinical().category_thresholds[population] ? population : "adult",
      partial: Boolean(range),
      value: qty(obs),
      low: range && range.low ? range.low.value : null,
      high: range && range.high ? range.high.value : null,
      category: CATEGORIES.includes(category) ? category : null,
      undetermined: category ? null : interp.text || "undetermined",
      measures,
      // ProDERM responder (clinical spec §3) as the service wrote it: true, false, or null
      // (unknown: the reason in `responderAbsent`; absent from an older service's answer)
      responder: responder && typeof responder.valueBoolean === "boolean" ? responder.valueBoolean : null,
      responderAbsent: responder ? absentText(responder) : "not given by the service",
      notes: (obs.note || []).map((n) => n.text).filter((t) => !t.startsWith("fhirtis policy")),
    };
  }

  function readCycle(obs, index) {
    const comps = componentMap(obs);
    const basisConcept = comps["dosing-weight-basis"];
    const basis = basisConcept && basisConcept.valueCodeableConcept
      ? basisConcept.valueCodeableConcept.coding[0].code
      : null;
    const count = comps["administration-count"];
    return {
      number: index + 1,
      start: obs.effectivePeriod && obs.effectivePeriod.start,
      end: obs.effectivePeriod && obs.effectivePeriod.end,
      gPerKg: qty(obs),
      gPerKgAbsent: absentText(obs),
      grams: qty(comps["ivig-grams"]),
      gramsAbsent: absentText(comps["ivig-grams"]),
      weight: qty(comps["dosing-weight"]),
      weightAbsent: absentText(comps["dosing-weight"]),
      basis,
      maxRate: qty(comps["max-infusion-rate"]),
      maxRateAbsent: absentText(comps["max-infusion-rate"]),
      count: count ? count.valueInteger : null,
      administrations: (obs.partOf || []).map((p) => stripHistory(p.reference)),
      notes: (obs.note || []).map((n) => n.text).filter((t) => !t.startsWith("fhirtis policy")),
      alerts: [],
    };
  }

  // The service's own judgement of a cycle's dose (exact decimal arithmetic), never a float
  // comparison here.
  function offTarget(cycle) {
    return cycle.notes.some((n) => n.includes("off the target"));
  }

  function readFlag(flag) {
    if (!flag) return null;
    const factors = ext(flag, "tee-risk-factor").map((e) => {
      const sub = e.extension || [];
      const factor = sub.find((x) => x.url === "factor");
      const factorCode = factor && factor.valueCodeableConcept
        ? factor.valueCodeableConcept.coding[0].code
        : "unknown";
      return {
        code: factorCode,
        label: factorCode === "obesity"
          ? `Obesity (BMI ≥ ${clinical().policy.obesity_bmi})`
          : RISK_FACTOR_LABEL[factorCode] || prettyCode(factorCode),
        detail: (sub.find((x) => x.url === "detail") || {}).valueString || "",
        evidence: sub.filter((x) => x.url === "evidence").map((x) => stripHistory(x.valueReference.reference)),
      };
    });
    const max = ext(flag, "applicable-max-rate")[0];
    // With no factor found, the factors that could not be assessed ("obesity (no BMI, …)"): the
    // maximum rests on them (clinical spec: where data does not allow a rule to run, say so).
    // The Flag names each in a tee-risk-unassessed extension; one written before those
    // extensions existed says them in its text only ("none found, not assessable: …; maximum
    // rate 4 mg/kg/min").
    const unassessed = ext(flag, "tee-risk-unassessed").map((e) => {
      const sub = e.extension || [];
      const factor = sub.find((x) => x.url === "factor");
      const code = factor && factor.valueCodeableConcept && factor.valueCodeableConcept.coding
        ? factor.valueCodeableConcept.coding[0].code
        : "unknown";
      const reason = (sub.find((x) => x.url === "reason") || {}).valueString;
      return reason ? `${code} (${reason})` : code;
    });
    const said = flag.code && typeof flag.code.text === "string" ? flag.code.text : "";
    const hit = factors.length || unassessed.length
      ? null
      : /, not assessable: (.+); maximum rate [^;]*$/.exec(said);
    return {
      active: flag.status === "active",
      factors,
      unassessed: factors.length ? null : unassessed.length ? unassessed.join(", ") : hit ? hit[1] : null,
      maxRate: max ? qty(max) : null,
      asOf: flag.period && flag.period.start,
    };
  }

  function readIssue(issue) {
    const rate = ext(issue, "infusion-rate")[0];
    const max = ext(issue, "applicable-max-rate")[0];
    return {
      date: issue.identifiedDateTime,
      rate: rate ? qty(rate) : null,
      max: max ? qty(max) : null,
      detail: issue.detail || "",
      severity: issue.severity || "",
      administrations: (issue.implicated || []).map((r) => stripHistory(r.reference)),
      // the infusion (bag) it is a rate step of (partOf), which the service names in evidence:
      // two steps of one titrated bag are two alerts of one infusion
      stepOf: stepOf(issue),
    };
  }

  function stepOf(issue) {
    const detail = (issue.evidence || []).flatMap((e) => e.detail || []).find((d) => d && d.reference);
    return detail ? stripHistory(detail.reference) : null;
  }

  // The infusions (bags) the rate alerts are of: a step counts as the bag it is part of.
  function infusionCount(issues) {
    return new Set(issues.map((i) => i.stepOf || i.administrations[0] || i)).size;
  }

  function readEvent(ae) {
    const early = ext(ae, "tee-early-onset")[0];
    return {
      what: humanize((ae.event && (ae.event.text || (ae.event.coding && ae.event.coding[0].display))) ||
        "thromboembolic event"),
      date: ae.date,
      // true, false, or null: unknown (a date-only onset of which only part of the day is
      // early, clinical spec §5.3), written by the service as no tee-early-onset extension
      early: early && typeof early.valueBoolean === "boolean" ? early.valueBoolean : null,
      suspects: (ae.suspectEntity || []).map((e) => stripHistory(e.instance.reference)),
      condition: ae.resultingCondition && ae.resultingCondition[0]
        ? ae.resultingCondition[0].reference
        : null,
    };
  }

  function readBundle(bundle) {
    const resources = (bundle.entry || []).map((e) => e.resource).filter(Boolean);
    const outcome = resources.find((r) => r.resourceType === "OperationOutcome");
    const observations = resources.filter((r) => r.resourceType === "Observation");
    const byCode = (c) => observations.filter((o) => code(o) === c);
    const tis = byCode("tis").map(readTis)
      .sort((a, b) => (dayValue(a.date) ?? 0) - (dayValue(b.date) ?? 0));
    const cycles = byCode("ivig-cycle-dose")
      .sort((a, b) => String(a.effectivePeriod.start).localeCompare(String(b.effectivePeriod.start)))
      .map(readCycle);
    const issues = resources.filter((r) => r.resourceType === "DetectedIssue").map(readIssue)
      .sort((a, b) => String(a.date).localeCompare(String(b.date)));
    for (const issue of issues) {
      const cycle = cycles.find((c) => issue.administrations.some((a) => c.administrations.includes(a)));
      if (cycle) {
        cycle.alerts.push(issue);
        issue.cycle = cycle.number;
      }
    }
    const det = byCode("confirmed-deterioration")[0];
    const cumulative = byCode("ivig-cumulative-dose")[0];
    const cumComps = cumulative ? componentMap(cumulative) : {};
    const all = outcome ? outcome.issue || [] : [];
    return {
      status: all[0] && all[0].severity === "information" ? all[0].diagnostics : null,
      outcome: all.slice(all[0] && all[0].severity === "information" ? 1 : 0),
      policy: parsePolicy(observations),
      tis,
      deterioration: det
        ? {
          value: typeof det.valueBoolean === "boolean" ? det.valueBoolean : null,
          date: det.effectiveDateTime,
          absent: absentText(det),
        }
        : null,
      cycles,
      cumulative: cumulative
        ? {
          grams: qty(cumulative),
          gramsAbsent: absentText(cumulative),
          gPerKg: qty(cumComps["cumulative-g-per-kg"]),
          gPerKgAbsent: absentText(cumComps["cumulative-g-per-kg"]),
        }
        : null,
      flag: readFlag(resources.find((r) => r.resourceType === "Flag" && code(r) === "tee-risk")),
      issues,
      events: resources.filter((r) => r.resourceType === "AdverseEvent").map(readEvent),
    };
  }

  // -- rendering: helpers --------------------------------------------------------------------

  function tisText(t) {
    return t.partial ? `${num(t.low)}–${num(t.high)}` : num(t.value);
  }

  function categoryText(t) {
    if (t.category) return CATEGORY_LABEL[t.category];
    return `Category ${t.undetermined}`;
  }

  function responderCell(t) {
    if (t.responder !== null) {
      return h("span", { class: `responder responder-${t.responder ? "yes" : "no"}` }, t.responder ? "Yes" : "No");
    }
    return [
      h("span", { class: "responder responder-unknown" }, "Unknown"),
      t.responderAbsent ? h("span", { class: "small muted" }, ` (${t.responderAbsent})`) : null,
    ];
  }

  function badge(category, text) {
    return h("span", { class: `badge cat-${category || "undetermined"}` }, text);
  }

  function table(caption, headers, rows, { className = "", footer = null } = {}) {
    return h(
      "table",
      { class: `data ${className}` },
      h("caption", null, caption),
      h("thead", null, h("tr", null, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", null, rows),
      footer ? h("tfoot", null, footer) : null,
    );
  }

  function card(title, value, detail, tone) {
    return h(
      "div",
      { class: `card tone-${tone || "neutral"}` },
      h("h3", null, title),
      h("p", { class: "card-value" }, value),
      detail ? h("p", { class: "card-detail" }, detail) : null,
    );
  }

  // -- rendering: summary -------------------------------------------------------------------

  function renderSummary(model) {
    const root = $("summary");
    // What the service says of the record as a whole comes first, not only among the data
    // warnings: the patient is recorded deceased ("now" describes the record, not future care),
    // the record was read only in part, or part of it could not be used (the numbers below may
    // be short).
    for (const i of model.outcome) {
      const whole = (i.expression || []).includes("Patient.deceased[x]") || i.code === "incomplete" ||
        i.severity === "error" || i.severity === "fatal";
      const words = i.diagnostics || (i.details && i.details.text);
      if (whole && words) {
        root.append(h("p", { class: `note ${i.severity === "warning" ? "warn" : "error"} record-note`, role: "note" },
          words.charAt(0).toUpperCase() + words.slice(1) + (/[.!?]$/.test(words) ? "" : ".")));
      }
    }
    const latest = model.tis[model.tis.length - 1];
    const cards = [];
    if (latest) {
      const weeks = weeksBetween(latest.baseline, latest.date);
      cards.push(card(
        "Latest TIS",
        h("span", { id: "tis-latest" },
          h("span", { class: "big" }, tisText(latest)),
          latest.partial ? h("span", { class: "unit" }, " partial") : h("span", { class: "unit" }, " / 100")),
        [badge(latest.category, categoryText(latest)),
          h("span", { class: "card-when" }, `${weeks !== null ? `Week ${weeks} · ` : ""}${fmtDate(latest.date)}`)],
        latest.category === "major" || latest.category === "moderate" ? "good" : "neutral",
      ));
    } else {
      cards.push(card("Latest TIS", "—", "No follow-up assessment with a baseline yet.", "neutral"));
    }
    const det = model.deterioration;
    if (det) {
      if (det.value === true) {
        cards.push(card("Deterioration", "Confirmed", `on ${fmtDate(det.date)}`, "bad"));
      } else if (det.value === false) {
        cards.push(card("Deterioration", "None confirmed", `through ${fmtDate(det.date)}`, "good"));
      } else {
        cards.push(card("Deterioration", "Undetermined", det.absent || "", "warn"));
      }
    }
    const cum = model.cumulative;
    cards.push(card(
      "IVIG",
      h("span", { id: "ivig-count" }, plural(model.cycles.length, "cycle", "cycles")),
      cum
        ? `${cum.grams !== null ? `${num(cum.grams)} g` : "grams partly unknown"} · ` +
          `${cum.gPerKg !== null ? `${num(cum.gPerKg, 2)} g/kg` : "g/kg partly unknown"} cumulative`
        : "No IVIG administrations found.",
      "neutral",
    ));
    const flag = model.flag;
    if (flag) {
      const n = flag.factors.length;
      cards.push(card(
        "Thromboembolism risk",
        n ? plural(n, "risk factor", "risk factors") : flag.unassessed ? "None found, some not assessable" : "No risk factors",
        flag.maxRate !== null ? `Maximum rate now ${num(flag.maxRate, 2)} mg/kg/min` : "",
        n || flag.unassessed ? "warn" : "good",
      ));
    }
    const nEvents = model.events.length;
    const nIssues = model.issues.length;
    const alerts = [];
    if (nEvents) alerts.push(`${plural(nEvents, "thromboembolic event", "thromboembolic events")} after IVIG`);
    if (nIssues) alerts.push(`${plural(infusionCount(model.issues), "infusion", "infusions")} above the maximum rate`);
    cards.push(card(
      "Safety alerts",
      nEvents
        ? plural(nEvents, "TEE event", "TEE events")
        : nIssues ? plural(nIssues, "rate alert", "rate alerts") : "None",
      alerts.length ? alerts.join(" · ") : "No rate alerts or IVIG-associated events.",
      nEvents ? "bad" : nIssues ? "warn" : "good",
    ));
    root.append(h("div", { class: "card-row" }, cards));
  }

  // -- rendering: TIS chart --------------------------------------------------------------------

  // "haq: haq missing at follow-up" for each missing measure of a partial TIS.
  function missingText(p) {
    const missing = MEASURES.filter((m) => p.measures[m.key].score === null)
      .map((m) => `${m.abbr}: ${p.measures[m.key].absent || "missing"}`);
    return missing.length ? missing.join("; ") : p.notes.join(" ");
  }

  function renderTisChart(model) {
    const fig = $("tis-figure");
    const points = model.tis;
    if (!points.length) {
      fig.append(h("p", { class: "empty" }, "No TIS yet: it needs a baseline and a follow-up assessment."));
      return;
    }
    const population = points[points.length - 1].population;
    const t = clinical().category_thresholds[population];
    const W = 760;
    const H = 400;
    const m = { left: 44, right: 150, top: 22, bottom: 96 };
    const pw = W - m.left - m.right;
    const ph = H - m.top - m.bottom;

    const baseline = points[0].baseline;
    const dates = [dayValue(baseline), ...points.map((p) => dayValue(p.date))];
    for (const c of model.cycles) dates.push(dayValue(c.start), dayValue(c.end));
    for (const e of model.events) dates.push(dayValue(e.date));
    const valid = dates.filter((d) => d !== null);
    const span = Math.max(...valid) - Math.min(...valid) || 86400000 * 28;
    const x0 = Math.min(...valid) - span * 0.04;
    const x1 = Math.max(...valid) + span * 0.04;
    const x = (d) => m.left + ((d - x0) / (x1 - x0)) * pw;
    const y = (v) => m.top + ph - (Math.max(0, Math.min(100, v)) / 100) * ph;

    const titleId = "tis-chart-title";
    const descId = "tis-chart-desc";
    const svg = s("svg", {
      viewBox: `0 0 ${W} ${H}`,
      role: "img",
      "aria-labelledby": `${titleId} ${descId}`,
      class: "tis-chart",
      id: "tis-chart",
    });
    const desc = points.map((p) => `${fmtDate(p.date)}: TIS ${tisText(p)}${p.partial ? " (partial)" : ""}, ${categoryText(p).toLowerCase()}`).join("; ");
    svg.append(
      s("title", { id: titleId }, `Total Improvement Score from baseline ${fmtDate(baseline)}, ${population} criteria`),
      s("desc", { id: descId }, `${desc}. Category thresholds: minimal ${t.minimal}, moderate ${t.moderate}, major ${t.major}.`),
    );
    const defs = s("defs", null,
      s("pattern", { id: "hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" },
        s("rect", { width: 6, height: 6, fill: "#e2e8f0" }),
        s("line", { x1: 0, y1: 0, x2: 0, y2: 6, stroke: "#64748b", "stroke-width": 2 })));
    svg.append(defs);

    // Category bands.
    const bands = [
      ["none", 0, t.minimal, `None  < ${t.minimal}`],
      ["minimal", t.minimal, t.moderate, `Minimal  ≥ ${t.minimal}`],
      ["moderate", t.moderate, t.major, `Moderate  ≥ ${t.moderate}`],
      ["major", t.major, 100, `Major  ≥ ${t.major}`],
    ];
    for (const [cat, lo, hi, label] of bands) {
      svg.append(s("rect", { x: m.left, y: y(hi), width: pw, height: y(lo) - y(hi), class: `band band-${cat}` }));
      svg.append(s("text", { x: m.left + pw + 10, y: (y(lo) + y(hi)) / 2 + 4, class: `band-label text-${cat}` }, label));
    }
    // Grid and y axis.
    for (let v = 0; v <= 100; v += 20) {
      svg.append(s("line", { x1: m.left, x2: m.left + pw, y1: y(v), y2: y(v), class: "grid" }));
      svg.append(s("text", { x: m.left - 8, y: y(v) + 4, class: "tick", "text-anchor": "end" }, String(v)));
    }
    for (const v of [t.minimal, t.moderate, t.major]) {
      svg.append(s("line", { x1: m.left, x2: m.left + pw, y1: y(v), y2: y(v), class: "threshold" }));
    }
    svg.append(s("text", { x: 12, y: m.top + ph / 2, class: "axis-title", transform: `rotate(-90 12 ${m.top + ph / 2})`, "text-anchor": "middle" }, "TIS (0–100)"));

    // Baseline marker.
    const bx = x(dayValue(baseline));
    svg.append(s("line", { x1: bx, x2: bx, y1: m.top, y2: m.top + ph, class: "baseline" }));
    svg.append(s("text", { x: bx + 4, y: m.top + 12, class: "baseline-label" }, "Baseline"));
    svg.append(s("text", { x: bx, y: m.top + ph + 18, class: "tick", "text-anchor": "middle" }, fmtDate(baseline, false)));
    svg.append(s("text", { x: bx, y: m.top + ph + 32, class: "tick muted", "text-anchor": "middle" }, "week 0"));

    // Connecting line (through the midpoint of a partial interval).
    const mids = points.map((p) => [x(dayValue(p.date)), y(p.partial ? (p.low + p.high) / 2 : p.value)]);
    if (mids.length > 1) {
      svg.append(s("polyline", { points: mids.map((p) => p.join(",")).join(" "), class: "trend" }));
    }

    // Points and intervals; a follow-up's date under the axis where it does not run into the
    // one before (a time axis of years of IVIG crowds its first weeks; the table lists all).
    let lastTick = bx;
    let lastValue = null;
    // a point's value label where it does not overlap the last one drawn (the title has it)
    const valueFits = (vx, vy) => {
      const fits = !lastValue || vx - lastValue[0] >= 34 || Math.abs(vy - lastValue[1]) >= 16;
      if (fits) lastValue = [vx, vy];
      return fits;
    };
    for (const p of points) {
      const px = x(dayValue(p.date));
      const cls = p.category || "undetermined";
      const g = s("g", { class: `point cat-${cls}` });
      if (p.partial) {
        const top = y(p.high);
        const bottom = y(p.low);
        g.append(
          s("rect", { x: px - 7, y: top, width: 14, height: Math.max(2, bottom - top), rx: 3, class: "interval", fill: p.category ? null : "url(#hatch)" }),
          s("line", { x1: px - 11, x2: px + 11, y1: top, y2: top, class: "cap" }),
          s("line", { x1: px - 11, x2: px + 11, y1: bottom, y2: bottom, class: "cap" }),
        );
        if (valueFits(px, (top + bottom) / 2)) {
          g.append(s("text", { x: px + 14, y: (top + bottom) / 2 + 4, class: "value-label" }, `${tisText(p)} (partial)`));
        }
      } else {
        g.append(s("circle", { cx: px, cy: y(p.value), r: 7, class: "dot" }));
        if (valueFits(px, y(p.value))) {
          g.append(s("text", { x: px, y: y(p.value) - 13, class: "value-label", "text-anchor": "middle" }, tisText(p)));
        }
      }
      const weeks = weeksBetween(p.baseline, p.date);
      g.append(s("title", null, `${fmtDate(p.date)}: TIS ${tisText(p)}, ${categoryText(p)}`));
      svg.append(g);
      svg.append(s("line", { x1: px, x2: px, y1: m.top + ph, y2: m.top + ph + 5, class: "axis" }));
      if (px - lastTick >= 46) {
        lastTick = px;
        svg.append(s("text", { x: px, y: m.top + ph + 18, class: "tick", "text-anchor": "middle" }, fmtDate(p.date, false)));
        svg.append(s("text", { x: px, y: m.top + ph + 32, class: "tick muted", "text-anchor": "middle" }, weeks !== null ? `week ${weeks}` : ""));
      }
    }
    svg.append(s("line", { x1: m.left, x2: m.left + pw, y1: m.top + ph, y2: m.top + ph, class: "axis" }));

    // Treatment track: IVIG cycles and thromboembolic events under the time axis.
    const trackY = m.top + ph + 48;
    svg.append(s("text", { x: m.left - 8, y: trackY + 11, class: "tick", "text-anchor": "end" }, "IVIG"));
    svg.append(s("line", { x1: m.left, x2: m.left + pw, y1: trackY + 7, y2: trackY + 7, class: "track" }));
    let lastCycleLabel = -Infinity;
    for (const c of model.cycles) {
      const cx0 = x(dayValue(c.start));
      const cx1 = Math.max(cx0 + 6, x(dayValue(c.end) + 86400000));
      const labelled = cx0 - lastCycleLabel >= 8 + 7 * String(c.number).length;
      if (labelled) lastCycleLabel = cx0;
      const g = s("g", { class: c.alerts.length ? "cycle cycle-alert" : "cycle" },
        s("rect", { x: cx0, y: trackY, width: cx1 - cx0, height: 14, rx: 2 }),
        labelled ? s("text", { x: cx0, y: trackY + 30, class: "tick", "text-anchor": "start" }, `C${c.number}`) : null,
        s("title", null, `IVIG cycle ${c.number}: ${fmtRange(c.start, c.end)}`));
      svg.append(g);
    }
    for (const e of model.events) {
      const ex = x(dayValue(e.date));
      svg.append(s("g", { class: "event" },
        s("path", { d: `M ${ex} ${trackY - 4} l 8 14 l -16 0 z` }),
        s("text", { x: ex + 10, y: trackY - 2, class: "event-label" }, e.what),
        s("title", null, `${e.what}, onset ${fmtDate(e.date)}`)));
    }
    fig.append(svg);

    const legend = h("ul", { class: "legend", "aria-label": "Chart legend" },
      CATEGORIES.map((c) => h("li", null, h("span", { class: `swatch cat-${c}`, "aria-hidden": "true" }), CATEGORY_LABEL[c])),
      points.some((p) => p.partial) ? h("li", null, h("span", { class: "swatch interval-swatch", "aria-hidden": "true" }), "Partial TIS: possible range") : null,
      model.cycles.length ? h("li", null, h("span", { class: "swatch cycle-swatch", "aria-hidden": "true" }), "IVIG cycle") : null,
      model.cycles.some((c) => c.alerts.length) ? h("li", null, h("span", { class: "swatch cycle-swatch alert", "aria-hidden": "true" }), "IVIG cycle with a rate alert") : null,
      model.events.length ? h("li", null, h("span", { class: "swatch event-swatch", "aria-hidden": "true" }), "Thromboembolic event") : null);
    fig.append(h("figcaption", null,
      `TIS at each follow-up against baseline (${fmtDate(baseline)}), shaded by the ACR/EULAR ` +
        `${population} response categories.`, legend));

    // The same data as a table.
    const rows = points.map((p) => h("tr", null,
      h("th", { scope: "row" }, fmtDate(p.date)),
      h("td", { class: "num" }, String(weeksBetween(p.baseline, p.date) ?? "—")),
      h("td", { class: "num" }, tisText(p)),
      h("td", null, badge(p.category, categoryText(p))),
      h("td", null, responderCell(p)),
      h("td", { class: "small" }, p.partial ? missingText(p) : h("span", { class: "muted" }, "none"))));
    $("tis-table").append(h("div", { class: "table-scroll" }, table(
      `Total Improvement Score by follow-up (baseline ${fmtDate(baseline)}, ${population} criteria)`,
      ["Follow-up", "Week", "TIS", "Category", "Responder (ProDERM)", "Missing measures"], rows)));
  }

  // -- rendering: measures ----------------------------------------------------------------

  function renderMeasures(model) {
    const root = $("measures-body");
    const latest = model.tis[model.tis.length - 1];
    if (!latest) {
      root.append(h("p", { class: "empty" }, "No follow-up assessment yet."));
      return;
    }
    const heading = $("measures-h");
    heading.textContent = "Core set measures at the latest follow-up";
    const rows = MEASURES.map((m) => {
      const v = latest.measures[m.key];
      const missing = v.score === null;
      const max = clinical().measure_max[m.key];
      const frac = missing ? 0 : v.score / max;
      return h("tr", { class: missing ? "missing" : null },
        h("th", { scope: "row" }, h("span", { class: "measure-abbr" }, m.abbr),
          h("span", { class: "measure-name" }, m.name)),
        h("td", { class: "num" }, missing ? "—" : `${percent(v.improvement)} %`),
        h("td", { class: "score-cell" }, missing
          ? h("span", { class: "absent small" }, `missing: ${v.absent || "no value"}`)
          : [
            h("span", { class: "score" }, num(v.score), h("span", { class: "muted" }, ` / ${max}`)),
            h("span", { class: "meter", role: "img", "aria-label": `${num(v.score)} of ${max} points` },
              h("span", { class: "meter-fill", "data-frac": frac.toFixed(3) })),
          ]));
    });
    const total = h("tr", null,
      h("th", { scope: "row" }, "Total Improvement Score"),
      h("td", { class: "num" }, h("span", { class: "score" }, tisText(latest), h("span", { class: "muted" }, " / 100"))),
      h("td", null, badge(latest.category, categoryText(latest))));
    root.append(h("div", { class: "table-scroll" }, table(
      `Week ${weeksBetween(latest.baseline, latest.date)} (${fmtDate(latest.date)}) against baseline ${fmtDate(latest.baseline)}`,
      ["Measure", "Improvement", "Score"],
      rows, { className: "measures", footer: total })));
    root.append(h("p", { class: "hint" },
      "Improvement is the change in the better direction as a percentage of the instrument's " +
        "range (relative change for the enzyme); each measure scores by band, the six scores sum to the TIS."));
    if (latest.partial) {
      root.append(h("p", { class: "note warn" }, latest.notes.join(" ")));
    }
    for (const fill of root.querySelectorAll(".meter-fill")) {
      fill.style.width = `${Math.round(Number(fill.dataset.frac) * 100)}%`;
    }
  }

  // -- rendering: IVIG -------------------------------------------------------------------

  function barChart({ id, title, desc, bars, unit, max, lines, digits }) {
    const W = 440;
    const H = 220;
    const m = { left: 36, right: 104, top: 28, bottom: 40 };
    const pw = W - m.left - m.right;
    const ph = H - m.top - m.bottom;
    const top = Math.max(max, ...bars.map((b) => b.value || 0), ...lines.map((l) => l.value)) * 1.15;
    const y = (v) => m.top + ph - (v / top) * ph;
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": `${id}-t ${id}-d`, class: "bar-chart", id });
    svg.append(s("title", { id: `${id}-t` }, title), s("desc", { id: `${id}-d` }, desc));
    svg.append(s("text", { x: m.left, y: 14, class: "chart-title" }, `${title} (${unit})`));
    const step = top > 6 ? 2 : top > 3 ? 1 : 0.5;
    for (let v = 0; v <= top; v += step) {
      svg.append(s("line", { x1: m.left, x2: m.left + pw, y1: y(v), y2: y(v), class: "grid" }));
      svg.append(s("text", { x: m.left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, String(v)));
    }
    // Reference lines under the bars; a bar above its limit carries the limit as a marker.
    for (const l of lines) {
      svg.append(s("line", { x1: m.left, x2: m.left + pw, y1: y(l.value), y2: y(l.value), class: `ref ${l.className || ""}` }));
      const label = s("text", { x: m.left + pw + 6, y: y(l.value) + 4 + (l.dy || 0), class: `ref-label ${l.className || ""}` });
      for (const [i, part] of l.label.split("\n").entries()) {
        label.append(s("tspan", { x: m.left + pw + 6, dy: i ? 12 : 0 }, part));
      }
      svg.append(label);
    }
    const slot = pw / Math.max(bars.length, 1);
    const bw = Math.min(46, slot * 0.6);
    // Many bars (years of cycles): the values are left to the table beside the chart, and the
    // axis names every few bars, never one label over another.
    const showValues = slot >= 30;
    const every = Math.ceil(42 / slot);
    bars.forEach((b, i) => {
      const cx = m.left + slot * (i + 0.5);
      const g = s("g", { class: `bar ${b.className || ""}` });
      if (b.value !== null) {
        const top = y(b.value);
        const tall = y(0) - top >= 24;
        g.append(s("rect", { x: cx - bw / 2, y: top, width: bw, height: y(0) - top, rx: 2 }));
        if (b.marker !== undefined && b.marker !== null) {
          g.append(s("line", { x1: cx - bw / 2 - 4, x2: cx + bw / 2 + 4, y1: y(b.marker), y2: y(b.marker), class: "bar-marker" }));
        }
        if (showValues) g.append(s("text", {
          x: cx,
          y: tall ? top + 15 : top - 5,
          class: tall ? "value-inside" : "value-label",
          "text-anchor": "middle",
        }, b.text ?? num(b.value, digits)));
      } else if (showValues) {
        g.append(s("text", { x: cx, y: y(0) - 6, class: "tick", "text-anchor": "middle" }, "unknown"));
      } else {
        g.append(s("line", { x1: cx, x2: cx, y1: y(0) - 8, y2: y(0), class: "bar-unknown" }));
      }
      g.append(s("title", null, b.tooltip));
      svg.append(g);
      if (i % every === 0) {
        svg.append(s("text", { x: cx, y: y(0) + 16, class: "tick", "text-anchor": "middle" }, b.label));
        svg.append(s("text", { x: cx, y: y(0) + 30, class: "tick muted", "text-anchor": "middle" }, b.sublabel || ""));
      }
    });
    svg.append(s("line", { x1: m.left, x2: m.left + pw, y1: y(0), y2: y(0), class: "axis" }));
    return svg;
  }

  function renderIvig(model) {
    const root = $("ivig-body");
    const cycles = model.cycles;
    if (!cycles.length) {
      root.append(h("p", { class: "empty" }, "No IVIG administrations were found in the record."));
      return;
    }
    const policy = model.policy;
    const service = clinical().policy;
    const target = Number(policy.target_dose_g_per_kg || service.target_dose_g_per_kg);
    const tolerance = Number(policy.dose_tolerance_percent || service.dose_tolerance_percent);
    const standardMax = Number(policy.max_rate_mg_kg_min || service.max_rate_mg_kg_min);
    const riskMax = Number(policy.max_rate_with_risk_mg_kg_min || service.max_rate_with_risk_mg_kg_min);
    const nowMax = model.flag && model.flag.maxRate !== null ? model.flag.maxRate : null;
    // A cycle's g/kg as the service wrote it beside the nearer edge of the target's tolerance
    // (1.7999 off target, never "1.8", the edge itself), with "off target" in words.
    const edges = [target * (1 - tolerance / 100), target * (1 + tolerance / 100)];
    const dose = (c) => numBeside(c.gPerKg, c.gPerKg < target ? edges[0] : edges[1]);
    const doseText = (c) => (c.gPerKg !== null ? `${dose(c)} g/kg` : "unknown") + (offTarget(c) ? ", off target" : "");
    // A cycle's highest rate beside the maximum it went above (4.004, never "4 above 4").
    const applicableMax = (c) => (c.alerts.length ? Math.min(...c.alerts.map((a) => a.max)) : null);
    const rate = (c) => numBeside(c.maxRate, applicableMax(c));

    const doseChart = barChart({
      id: "dose-chart",
      title: "Dose per cycle",
      unit: "g/kg",
      desc: cycles.map((c) => `cycle ${c.number}: ${doseText(c)}`).join("; ") + `; target ${target} g/kg (±${tolerance} %).`,
      bars: cycles.map((c) => ({
        value: c.gPerKg,
        text: c.gPerKg !== null ? dose(c) : null,
        label: `C${c.number}`,
        sublabel: fmtDate(c.start, false),
        className: offTarget(c) ? "off-target" : "dose",
        tooltip: `Cycle ${c.number}: ${doseText(c)}`,
      })),
      max: target,
      digits: 2,
      lines: [{ value: target, label: `target ${target}`, className: "target" }],
    });
    const rateLines = [{ value: standardMax, label: `max ${standardMax}`, className: nowMax === standardMax ? "limit now" : "limit", dy: -4 }];
    if (riskMax !== standardMax) {
      rateLines.push({ value: riskMax, label: `max ${riskMax}\nwith risk factors`, className: nowMax === riskMax ? "limit-risk now" : "limit-risk", dy: 2 });
    }
    const rateChart = barChart({
      id: "rate-chart",
      title: "Maximum infusion rate",
      unit: "mg/kg/min",
      desc: cycles.map((c) => `cycle ${c.number}: ${c.maxRate !== null ? `${rate(c)} mg/kg/min` : "unknown"}${c.alerts.length ? `, above the applicable maximum ${num(applicableMax(c), 2)}` : ""}`).join("; ") +
        `; maximum ${standardMax}, or ${riskMax} with thrombosis risk factors.`,
      bars: cycles.map((c) => ({
        value: c.maxRate,
        text: c.maxRate !== null ? rate(c) : null,
        label: `C${c.number}`,
        sublabel: fmtDate(c.start, false),
        className: c.alerts.length ? "over" : "rate",
        marker: applicableMax(c),
        tooltip: `Cycle ${c.number}: ${c.maxRate !== null ? `${rate(c)} mg/kg/min` : "rate unknown"}${c.alerts.length ? `, above the maximum ${num(applicableMax(c), 2)}` : ""}`,
      })),
      max: standardMax,
      digits: 2,
      lines: rateLines,
    });
    root.append(h("div", { class: "chart-pair" },
      h("figure", { class: "chart" }, doseChart,
        h("figcaption", null, `Grams per kg of dosing weight, per cycle; target ${target} g/kg (±${tolerance} %).`)),
      h("figure", { class: "chart" }, rateChart,
        h("figcaption", null, "Highest rate of any infusion in the cycle. Red: above the maximum that applied (marked).")),
    ));

    const anyNotes = cycles.some((c) => c.notes.length);
    const rows = cycles.map((c) => {
      const over = c.alerts.length > 0;
      const applicable = applicableMax(c);
      return h("tr", { class: over ? "alert-row" : null },
        h("th", { scope: "row", class: "nowrap" }, `Cycle ${c.number}`),
        h("td", { class: "nowrap" }, fmtRange(c.start, c.end)),
        h("td", { class: "num" }, c.count ?? "—"),
        h("td", { class: "num" }, c.grams !== null ? `${num(c.grams)} g` : h("span", { class: "absent" }, "unknown")),
        h("td", { class: "num" }, c.weight !== null ? `${num(c.weight)} kg` : h("span", { class: "absent" }, "unknown"),
          c.basis && c.basis !== "actual" ? h("span", { class: "muted small" }, ` ${BASIS_LABEL[c.basis] || c.basis}`) : null),
        h("td", { class: "num strong" }, c.gPerKg !== null ? dose(c) : h("span", { class: "absent" }, "unknown"),
          offTarget(c) ? [" ", h("span", { class: "badge off-target" }, "off target")] : null),
        h("td", { class: "num" }, c.maxRate !== null ? rate(c) : h("span", { class: "absent" }, "unknown")),
        h("td", null, over
          ? h("span", { class: "badge alert" }, `above ${num(applicable, 2)}`)
          : c.maxRate !== null ? h("span", { class: "ok" }, "within") : "—",
          over ? h("span", { class: "small muted" }, ` ${plural(c.alerts.length, "infusion", "infusions")}`) : null),
        anyNotes ? h("td", { class: "small" }, c.notes.join(" ")) : null);
    });
    const cum = model.cumulative;
    const footer = cum
      ? h("tr", null,
        h("th", { scope: "row" }, "Total"),
        h("td", { class: "nowrap" }, fmtRange(cycles[0].start, cycles[cycles.length - 1].end)),
        h("td", { class: "num" }, String(cycles.reduce((n, c) => n + (c.count || 0), 0))),
        h("td", { class: "num" }, cum.grams !== null ? `${num(cum.grams)} g` : h("span", { class: "absent" }, cum.gramsAbsent || "unknown")),
        h("td", null, ""),
        h("td", { class: "num strong" }, cum.gPerKg !== null ? num(cum.gPerKg, 2) : h("span", { class: "absent" }, "unknown")),
        h("td", { colspan: anyNotes ? 3 : 2 }, ""))
      : null;
    const headers = ["Cycle", "Dates", "Infusions", "IVIG", "Dosing weight", "g/kg", "Max rate mg/kg/min", "Against max"];
    if (anyNotes) headers.push("Notes");
    root.append(h("div", { class: "table-scroll" }, table(
      `IVIG cycles (${plural(cycles.length, "cycle", "cycles")})`, headers, rows,
      { className: "cycles", footer })));
  }

  // -- rendering: thromboembolism risk ----------------------------------------------------------

  function renderRisk(model) {
    const root = $("risk-body");
    const flag = model.flag;
    if (flag) {
      const max = flag.maxRate !== null ? `${num(flag.maxRate, 2)} mg/kg/min` : "unknown";
      root.append(h("p", { class: `risk-status ${flag.factors.length || flag.unassessed ? "warn" : "good"}` },
        flag.factors.length
          ? `${plural(flag.factors.length, "risk factor", "risk factors")} found. Maximum infusion rate now ${max}.`
          : flag.unassessed
            ? `No thromboembolism risk factors found in the record, but some could not be assessed: ${flag.unassessed}. Maximum infusion rate now ${max}.`
            : `No thromboembolism risk factors found in the record. Maximum infusion rate now ${max}.`));
      if (flag.factors.length) {
        root.append(h("h3", null, "Risk factors"));
        root.append(h("ul", { class: "factors" }, flag.factors.map((f) => h("li", null,
          h("strong", null, f.label),
          f.detail ? h("span", null, ` — ${f.detail}`) : null,
          f.evidence.length ? h("span", { class: "muted small ref" }, ` (${f.evidence.join(", ")})`) : null))));
      }
      if (flag.asOf) root.append(h("p", { class: "hint" }, `As of ${fmtDate(flag.asOf)}, the latest data in the record.`));
    } else {
      root.append(h("p", { class: "empty" }, "No thromboembolism risk assessment was returned."));
    }
    root.append(h("h3", null, "Events temporally associated with IVIG"));
    if (!model.events.length) {
      // the window the service used (clinical spec §5.3 tee_window_days, a setting), as the
      // result's policy note says it
      const days = model.policy.tee_window_days;
      root.append(h("p", { class: "good-text" }, days
        ? `None recorded within ${days} days of a cycle.`
        : "None recorded within the window after a cycle."));
      return;
    }
    const rows = model.events.map((e) => h("tr", { class: "alert-row" },
      h("th", { scope: "row" }, e.what),
      h("td", null, fmtDate(e.date)),
      h("td", null, e.early === true
        ? h("span", { class: "badge alert" }, `within ${model.policy.tee_early_hours || 24} h`)
        : e.early === false ? "no" : "unknown (date-only onset)"),
      h("td", { class: "small" }, `${plural(e.suspects.length, "infusion", "infusions")}: ${e.suspects.map((r) => r.split("/").pop()).join(", ")}`)));
    root.append(h("div", { class: "table-scroll" }, table("Thromboembolic events and suspect infusions",
      ["Event", "Onset", "Early onset", "Suspect IVIG"], rows, { className: "events" })));
  }

  // -- rendering: alerts and warnings ------------------------------------------------------

  // The reason part of a finding's detail ("… applicable with thrombosis risk factor(s): …"),
  // else the whole detail as written.
  function whyMaximum(detail) {
    const hit = /\bapplicable (.+)$/.exec(detail || "");
    if (!hit) return detail || "";
    return hit[1].charAt(0).toUpperCase() + hit[1].slice(1);
  }

  // "1 (2 rate steps)": the infusions of a row, and how many of its alerts are rate steps of one
  function infusionsText(items) {
    const steps = items.filter((i) => i.stepOf).length;
    const n = String(infusionCount(items));
    return steps ? `${n} (${plural(steps, "rate step", "rate steps")})` : n;
  }

  function renderAlerts(model) {
    const root = $("alerts-body");
    if (!model.issues.length) {
      root.append(h("p", { class: "good-text" }, "No infusion ran above the applicable maximum rate."));
      return;
    }
    // One row per run of alike findings (same cycle, rate, maximum and reason).
    const groups = [];
    for (const i of model.issues) {
      const last = groups[groups.length - 1];
      if (last && last.cycle === i.cycle && last.rate === i.rate && last.max === i.max && last.detail === i.detail) {
        last.items.push(i);
      } else {
        groups.push({ cycle: i.cycle, rate: i.rate, max: i.max, detail: i.detail, items: [i] });
      }
    }
    const rows = groups.map((g) => h("tr", null,
      h("th", { scope: "row", class: "nowrap" }, fmtRange(g.items[0].date, g.items[g.items.length - 1].date)),
      h("td", { class: "nowrap" }, g.cycle ? `Cycle ${g.cycle}` : "—"),
      h("td", { class: "num" }, infusionsText(g.items)),
      h("td", { class: "num strong" }, numBeside(g.rate, g.max)),
      h("td", { class: "num" }, num(g.max, 2)),
      h("td", { class: "num" }, g.rate !== null && g.max ? overBy(g.rate, g.max) : "—"),
      h("td", { class: "small", title: g.detail }, whyMaximum(g.detail))));
    root.append(h("div", { class: "table-scroll" }, table(
      `${plural(infusionCount(model.issues), "infusion", "infusions")} above the applicable maximum rate`,
      ["Dates", "Cycle", "Infusions", "Rate mg/kg/min", "Maximum", "Over by", "Why this maximum"],
      rows, { className: "alerts" })));
  }

  function renderWarnings(model) {
    const root = $("warnings-body");
    const serious = model.outcome.filter((i) => i.severity !== "information");
    const info = model.outcome.filter((i) => i.severity === "information");
    // a note several cycles' dose Observations carry (a body weight excluded before them all)
    // is one statement: said once, with the cycles it is said of
    const cyclesOf = new Map();
    for (const c of model.cycles) {
      for (const n of c.notes) {
        if (!cyclesOf.has(n)) cyclesOf.set(n, []);
        if (!cyclesOf.get(n).includes(c.number)) cyclesOf.get(n).push(c.number);
      }
    }
    const notes = [...cyclesOf].map(([n, numbers]) => ({
      severity: "warning",
      diagnostics: `${numbers.length > 1 ? "Cycles" : "Cycle"} ${numbers.join(", ")}: ${n}`,
    }));
    const all = [...serious, ...notes];
    if (!all.length) {
      root.append(h("p", { class: "good-text" }, "No problems were found in the data used."));
    } else {
      root.append(h("ul", { class: "issues" }, all.map((i) => h("li", { class: `issue sev-${i.severity}` },
        h("span", { class: "sev" }, i.severity), " ", i.diagnostics || (i.details && i.details.text) || i.code))));
    }
    if (info.length) {
      root.append(h("details", null,
        h("summary", null, `Processing notes (${info.length})`),
        h("ul", { class: "issues small" }, info.map((i) => h("li", null, i.diagnostics || i.code)))));
    }
    const policy = Object.entries(model.policy);
    if (policy.length) {
      root.append(h("details", null,
        h("summary", null, "Settings used for this evaluation"),
        table("fhirtis policy values", ["Setting", "Value"],
          policy.map(([k, v]) => h("tr", null, h("th", { scope: "row" }, k.replace(/_/g, " ")), h("td", null, v))),
          { className: "policy" })));
    }
  }

  // -- the patient banner (SMART App Launch: need_patient_banner) ------------------------------

  function patientName(patient) {
    const names = Array.isArray(patient.name) ? patient.name.filter((n) => n && typeof n === "object") : [];
    const name = names.find((n) => n.use === "official") || names.find((n) => n.use === "usual") ||
      names.find((n) => n.use !== "old" && n.use !== "maiden") || names[0];
    if (!name) return "";
    if (typeof name.text === "string" && name.text.trim()) return name.text.trim();
    const given = Array.isArray(name.given) ? name.given.filter((g) => typeof g === "string") : [];
    const parts = [...given, typeof name.family === "string" ? name.family : ""];
    return parts.map((x) => x.trim()).filter(Boolean).join(" ");
  }

  // Who the record is, read from the EHR with the app's own token, when the EHR asks the app to
  // show a banner; if it cannot be read, the banner says so rather than showing the id alone.
  async function renderBanner(session) {
    const who = $("ctx-who");
    const shown = $("ctx-name");
    if (!who || !shown || !session.needPatientBanner) return;
    who.hidden = false;
    const base = session.iss.replace(/\/+$/, "");
    try {
      const { response, body } = await fetchJson(
        `${base}/Patient/${encodeURIComponent(session.patient)}`,
        { headers: { Accept: "application/fhir+json", Authorization: `Bearer ${session.accessToken}` } },
        "the EHR's FHIR server",
      );
      if (!response.ok || !body || body.resourceType !== "Patient") throw new Error("no Patient");
      const parts = [patientName(body) || "(no name recorded)"];
      if (typeof body.gender === "string") parts.push(body.gender);
      if (typeof body.birthDate === "string") parts.push(`born ${body.birthDate}`);
      shown.textContent = parts.join(" · ");
    } catch {
      shown.textContent = "name and birth date could not be read from the record";
      shown.classList.add("unknown");
    }
  }

  function renderContext(model, session) {
    const latest = model.tis[model.tis.length - 1];
    $("ctx-patient").textContent = session.patient;
    renderBanner(session);
    $("ctx-criteria").textContent = latest ? `${latest.population} (ACR/EULAR)` : "—";
    let host = session.iss;
    try {
      host = new URL(session.iss).host;
    } catch {
      // keep the text
    }
    $("ctx-server").textContent = host;
    $("ctx-server").title = session.iss;
    $("context").hidden = false;
  }

  function render(bundle, session) {
    const model = readBundle(bundle);
    renderContext(model, session);
    renderSummary(model);
    renderTisChart(model);
    renderMeasures(model);
    renderIvig(model);
    renderRisk(model);
    renderAlerts(model);
    renderWarnings(model);
    const version = $("version");
    if (version && model.status) version.title = model.status;
    // The live region that said "Evaluating patient …" says the results are there (a screen
    // reader announces it; hiding the region said nothing), out of sight: the page looks as before.
    const status = $("status");
    status.className = "visually-hidden";
    status.textContent = `The results for patient ${session.patient} are shown.`;
    $("results").hidden = false;
    document.body.dataset.state = "ready";
  }

  // -- start -----------------------------------------------------------------------------------

  function showError(err) {
    const message = err instanceof AppError ? err.message : "Something went wrong on this page.";
    if (!(err instanceof AppError)) console.error(err);
    const box = h("div", null,
      h("p", { class: "error-title" }, message),
      err.issues && err.issues.length
        ? h("ul", null, err.issues.map((i) => h("li", null, i.diagnostics || i.code)))
        : null,
      err.relaunch ? h("p", null, "Open the app again from the patient's chart in the EHR.") : null);
    setStatus(box, "error");
    document.body.dataset.state = "error";
  }

  async function main() {
    const params = new URLSearchParams(window.location.search);
    try {
      if (params.has("iss") && params.has("launch")) {
        await startLaunch(params.get("iss"), params.get("launch"));
        return;
      }
      if (params.has("error")) {
        // The answer's words are shown only for a sign-in this tab started (its state): any
        // link can carry ?error=…&error_description=…, and the page would show its text as the
        // EHR's (RFC 6749 §10.12: the state binds the answer to the request).
        const state = params.get("state");
        const ours = state ? takeLaunch(state) : null;
        dropLaunchQuery();
        if (!ours) {
          throw new AppError(NOT_STARTED_HERE, { relaunch: true });
        }
        throw new AppError(
          `The EHR did not authorize the app: ${params.get("error_description") || params.get("error")}.`,
          { relaunch: true },
        );
      }
      if (params.has("code") && params.has("state")) {
        await finishLaunch(params.get("code"), params.get("state"));
      }
      const session = readSession();
      if (!session) {
        setStatus("Open this app from a patient's chart in your EHR (SMART on FHIR launch).");
        document.body.dataset.state = "idle";
        return;
      }
      setStatus(`Evaluating patient ${session.patient}…`);
      CLINICAL = (await loadConfig()).clinical || null;
      clinical();
      const bundle = await evaluate(session);
      render(bundle, session);
    } catch (err) {
      showError(err);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
  else main();
})();
