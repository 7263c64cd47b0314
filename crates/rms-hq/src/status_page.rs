//! Head office's status page (`GET /hq/`): every store with its lag and last contact, the silent
//! ones first. One HTML file, no external assets; it asks for the admin token and keeps it in the
//! tab's session storage only.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};

/// A store is listed as silent when head office has not heard it for this long.
pub const SILENT_AFTER_S: u64 = 120;

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rms head office</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;margin-top:1rem}td,th{padding:.3rem .7rem;border-bottom:1px solid #ddd;text-align:left}
.silent{background:#fde8e8}.revoked{color:#999}#err{color:#b00}
</style></head><body>
<h1>rms head office</h1>
<form id="login"><label>Admin token <input id="token" type="password" autocomplete="off"></label>
<button>Show</button></form>
<p id="err"></p>
<h2>Silent stores <small>(not heard for SILENT_S s)</small></h2><ul id="silent"></ul>
<h2>Stores</h2>
<table><thead><tr><th>id</th><th>name</th><th>log head</th><th>store head</th><th>lag (entries)</th>
<th>lag (s)</th><th>last contact</th><th>catalogue</th><th>ingest errors</th><th>chains</th></tr></thead>
<tbody id="stores"></tbody></table>
<script>
const silentAfter = SILENT_S;
function cell(tr, text){const td=document.createElement('td');td.textContent=text;tr.appendChild(td);}
async function refresh(){
  const token = sessionStorage.getItem('rms-hq-token'); if(!token) return;
  try{
    const r = await fetch('/hq/v1/stores',{headers:{authorization:'Bearer '+token}});
    if(!r.ok){document.getElementById('err').textContent='head office said '+r.status;return;}
    const stores = await r.json(); document.getElementById('err').textContent='';
    const body = document.getElementById('stores'); body.replaceChildren();
    const silent = document.getElementById('silent'); silent.replaceChildren();
    for(const s of stores){
      const quiet = !s.revoked && (s.seconds_since_contact===null || s.seconds_since_contact>silentAfter);
      const tr=document.createElement('tr'); tr.className=s.revoked?'revoked':(quiet?'silent':'');
      [s.store_id,s.name+(s.revoked?' (revoked)':''),s.log_head,s.store_head,s.lag_entries,
       s.lag_seconds.toFixed(1),s.last_contact||'never',s.catalog_version,s.ingest_errors,
       s.chain_breaks?s.chain_breaks+' BROKEN':'ok'].forEach(v=>cell(tr,v));
      body.appendChild(tr);
      if(quiet){const li=document.createElement('li');li.textContent=s.name+' (#'+s.store_id+'), last contact '+(s.last_contact||'never');silent.appendChild(li);}
    }
  }catch(e){document.getElementById('err').textContent=String(e);}
}
document.getElementById('login').onsubmit=(e)=>{e.preventDefault();
  sessionStorage.setItem('rms-hq-token',document.getElementById('token').value);refresh();};
refresh(); setInterval(refresh, 2000);
</script></body></html>
"#;

pub(crate) fn page() -> Response<Full<Bytes>> {
    let html = PAGE.replace("SILENT_S", &SILENT_AFTER_S.to_string());
    let mut answer = Response::new(Full::new(Bytes::from(html)));
    *answer.status_mut() = StatusCode::OK;
    let headers = answer.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        hyper::header::CONTENT_SECURITY_POLICY,
        hyper::header::HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    answer
}
