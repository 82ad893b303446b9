#include "coordinator/http/dashboard_page.h"

namespace prunelab::coordinator {

const char* const kDashboardPage = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>prunelab dashboard</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:20px auto;max-width:1150px;color:#1d2430;padding:0 16px}
h1{font-size:21px;margin:0}h2{font-size:17px;margin:24px 0 8px;border-bottom:1px solid #d5dae1}
table{border-collapse:collapse;font-size:13px;margin:4px 0}th,td{padding:3px 8px;border-bottom:1px solid #e4e7ec;text-align:left}
th{background:#f4f6f8}.bar{background:#e4e7ec;width:160px;height:10px;border-radius:5px;overflow:hidden;display:inline-block}
.bar i{display:block;height:10px;background:#2f6fdf}.dead{color:#a3302a}.alive{color:#2b7a35}.muted{color:#5b6675}
.plot{width:100%;max-width:560px}.frame{fill:#fbfcfd;stroke:#c7cdd5}.pt{fill:#b7bec8}.fp{fill:#2f6fdf}.rec{fill:none;stroke:#2b9a3a;stroke-width:2.5}
.tick{font-size:10px;fill:#5b6675}.sweep{border:1px solid #e4e7ec;border-radius:6px;padding:8px 12px;margin:10px 0}
</style></head><body>
<h1>prunelab</h1><div class="muted" id="updated">loading...</div>
<h2>Sweeps</h2><div id="sweeps"></div>
<h2>Releases</h2><div id="releases"><div class="muted">no releases yet</div></div>
<h2>Workers</h2><table id="workers"><tr><th>worker</th><th>target</th><th>health</th><th>slots</th><th>task(s)</th><th>phase</th><th>hardware</th></tr></table>
<script>
function esc(s){return String(s).replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));}
function plot(t){
  const v=t.variants.filter(x=>x.latency_p90_ms>0);
  if(!v.length) return '<div class="muted">no benchmarked results yet</div>';
  let x0=Math.min(...v.map(a=>a.latency_p90_ms)),x1=Math.max(...v.map(a=>a.latency_p90_ms));
  let y0=Math.min(...v.map(a=>a.accuracy*100)),y1=Math.max(...v.map(a=>a.accuracy*100));
  const px=Math.max(1e-3,(x1-x0)*.1),py=Math.max(.2,(y1-y0)*.1);x0=Math.max(0,x0-px);x1+=px;y0-=py;y1+=py;
  const X=x=>50+(x-x0)/(x1-x0)*490,Y=y=>230-(y-y0)/(y1-y0)*210;
  let s='<svg class="plot" viewBox="0 0 560 260"><rect class="frame" x="50" y="20" width="490" height="210"/>';
  s+='<text class="tick" x="295" y="252" text-anchor="middle">p90 latency (ms): '+x0.toFixed(3)+' .. '+x1.toFixed(3)+'</text>';
  s+='<text class="tick" x="46" y="24" text-anchor="end">'+y1.toFixed(1)+'%</text><text class="tick" x="46" y="230" text-anchor="end">'+y0.toFixed(1)+'%</text>';
  for(const a of v){
    s+='<circle class="'+(a.rank==1?'fp':'pt')+' point" data-trial="'+esc(a.trial)+'" data-rank="'+a.rank+'" cx="'+X(a.latency_p90_ms).toFixed(1)+'" cy="'+Y(a.accuracy*100).toFixed(1)+'" r="5"><title>'+esc(a.trial+' '+a.variant+' '+(a.accuracy*100).toFixed(2)+'% p90 '+a.latency_p90_ms.toFixed(3)+' ms'+(a.pass?'':' (fails gates)'))+'</title></circle>';
    if(a.trial===t.recommended) s+='<circle class="rec" cx="'+X(a.latency_p90_ms).toFixed(1)+'" cy="'+Y(a.accuracy*100).toFixed(1)+'" r="10"/>';
  }
  return s+'</svg>';
}
async function refresh(){
  try{
    const sweeps=await (await fetch('/api/sweeps')).json();
    const workers=await (await fetch('/api/workers')).json();
    let html='';
    for(const s of sweeps){
      const pct=s.trials?Math.round(100*(s.done+s.failed)/s.trials):0;
      html+='<div class="sweep" data-sweep="'+esc(s.id)+'"><b>'+esc(s.id)+'</b> '+esc(s.name)+' &mdash; <span class="state">'+esc(s.state)+'</span> <span class="bar"><i style="width:'+pct+'%"></i></span> '+
        (s.done+s.failed)+'/'+s.trials+' results ('+s.failed+' failed, '+s.running+' running) <span class="muted">'+esc(s.note||'')+'</span>';
      if(!s.id.startsWith('ev-')) try{  // ev-: an evaluation of a release (see Releases below)
        const d=await (await fetch('/api/sweeps/'+encodeURIComponent(s.id)+'/decisions')).json();
        for(const t of d.targets){
          html+='<div class="target" data-target="'+esc(t.target)+'"><b>target '+esc(t.target)+'</b>: '+
            (t.recommended?'recommended <b class="recommended">'+esc(t.recommended)+'</b> &mdash; '+esc(t.why):'<span class="muted">'+esc(t.why)+'</span>')+plot(t)+'</div>';
        }
      }catch(e){}
      html+='</div>';
    }
    document.getElementById('sweeps').innerHTML=html||'<div class="muted">no sweeps yet</div>';
    let w='<tr><th>worker</th><th>target</th><th>health</th><th>slots</th><th>task(s)</th><th>phase</th><th>hardware</th></tr>';
    for(const x of workers){
      w+='<tr class="worker"><td>'+esc(x.worker)+'</td><td>'+esc(x.target)+'</td><td class="'+(x.alive?'alive':'dead')+'">'+(x.alive?'alive':'dead')+
        ' ('+(x.last_seen_ms_ago/1000).toFixed(1)+' s ago)</td><td>'+x.slots+'</td><td>'+esc(x.task||'')+'</td><td>'+esc(x.phase||'')+' '+
        (x.progress?Math.round(x.progress*100)+'%':'')+'</td><td>'+esc((x.hardware.cpu_model||'')+', '+x.hardware.cores+' cores, '+x.hardware.device)+'</td></tr>';
    }
    document.getElementById('workers').innerHTML=w;
    try{
      const r=await (await fetch('/api/releases')).json();
      let h='';
      for(const t of r.targets){
        h+='<div class="sweep release-target" data-target="'+esc(t.target)+'"><b>target '+esc(t.target)+'</b>: current <b class="current">'+esc(t.current||'none')+'</b>';
        h+='<table><tr><th>release</th><th>variant</th><th>status</th><th>by</th><th>when</th><th>note</th></tr>';
        for(const x of t.releases.slice().reverse()) h+='<tr class="release"><td>'+esc(x.version)+(x.current?' (current)':'')+'</td><td>'+esc(x.sweep+' '+x.trial)+'</td><td>'+esc(x.status)+(x.known_good?', known-good':'')+(x.forced?', forced: '+esc(x.force_reason||''):'')+'</td><td>'+esc(x.released_by)+'</td><td>'+new Date(x.released_at_ms).toLocaleString()+'</td><td>'+esc(x.note||'')+'</td></tr>';
        h+='</table><table><tr><th>event</th><th>from</th><th>to</th><th>by</th><th>when</th><th>reason</th></tr>';
        for(const e of t.events.slice().reverse()) h+='<tr class="event"><td>'+esc(e.action+(e.automatic?' (policy)':''))+'</td><td>'+esc(e.from||'')+'</td><td>'+esc(e.to)+'</td><td>'+esc(e.by)+'</td><td>'+new Date(e.at_ms).toLocaleString()+'</td><td>'+esc(e.reason||'')+'</td></tr>';
        h+='</table><table><tr><th>evaluation</th><th>release</th><th>data</th><th>level</th><th>why</th><th>action</th></tr>';
        for(const e of t.evaluations) h+='<tr class="evaluation"><td>'+esc(e.id)+(e.reference?' (reference)':'')+'</td><td>'+esc(e.release)+'</td><td>'+esc((e.data&&e.data.path)||'')+'</td><td>'+esc(e.level||e.state)+'</td><td>'+esc(e.why||'')+'</td><td>'+esc(e.action||'')+'</td></tr>';
        h+='</table></div>';
      }
      if(h) document.getElementById('releases').innerHTML=h;
    }catch(e){}
    document.getElementById('updated').textContent='updated '+new Date().toLocaleTimeString()+' (every 2 s); metrics at /metrics';
  }catch(e){document.getElementById('updated').textContent='coordinator unreachable: '+e;}
}
refresh();setInterval(refresh,2000);
</script></body></html>
)HTML";

}  // namespace prunelab::coordinator
