// Threshold grammar, evaluation and exit codes, and how the terminal summary and the HTML report show them.
import { describe, expect, it } from 'vitest';
import { renderHtml } from '../../scripts/loadtest/report-html.ts';
import { reportText } from '../../scripts/loadtest/report-text.ts';
import {
  EXIT,
  evaluateThreshold,
  parseThreshold,
  parseThresholds,
  resultLine,
  runResult,
  THRESHOLD_METRICS,
} from '../../scripts/loadtest/thresholds.ts';
import type { LoadtestReport } from '../../scripts/loadtest/types.ts';
import { expectUsageError as usageError } from '../helpers/errors.ts';
import { sampleReport } from './fixture.ts';

/** Parses and evaluates against the fixture (a storm run: 1000 sent, 990 acked, 10 errors, 2 lost). */
function check(expr: string, rep: LoadtestReport = sampleReport()) {
  return evaluateThreshold(parseThreshold(expr, rep.scenario.name), rep);
}

describe('threshold grammar', () => {
  it('parses metric, operator, number and unit, with or without spaces', () => {
    expect(parseThreshold('e2e.p99<25ms', 'steady')).toEqual({
      expression: 'e2e.p99<25ms',
      metric: 'e2e.p99',
      op: '<',
      limit: 25,
      unit: 'ms',
    });
    expect(parseThreshold(' puback.p999 <= 1.5s ', 'steady')).toMatchObject({
      op: '<=',
      limit: 1.5,
      unit: 's',
    });
    expect(parseThreshold('errors<1%', 'steady')).toMatchObject({ metric: 'errors', unit: '%' });
    expect(parseThreshold('lost==0', 'steady')).toMatchObject({ op: '==', limit: 0, unit: '' });
    expect(parseThreshold('throughput>=100/s', 'steady')).toMatchObject({ op: '>=', unit: '/s' });
    // a bare number on a time is ms
    expect(parseThreshold('connect.max>2', 'steady')).toMatchObject({ unit: 'ms', limit: 2 });
    expect(parseThreshold('attacks.leaked==0', 'attack').metric).toBe('attacks.leaked');
    expect(parseThreshold('storm.allBack<5s', 'storm').metric).toBe('storm.allBack');
    expect(parseThreshold('storm.allBackMs<5000', 'storm').unit).toBe('ms');
    expect(parseThreshold('ramp.knee>50', 'ramp').metric).toBe('ramp.knee');
  });

  it('refuses what it cannot read with one line naming the threshold (exit 2)', () => {
    expect(usageError(() => parseThreshold('e2e.p99 25ms', 'steady')).message).toMatch(
      /^--threshold "e2e\.p99 25ms": expected METRIC OP NUMBER\[UNIT\]/,
    );
    expect(usageError(() => parseThreshold('e2e.p98<25ms', 'steady')).message).toMatch(
      /unknown metric "e2e\.p98"/,
    );
    expect(usageError(() => parseThreshold('e2e.p99<5%', 'steady')).message).toMatch(
      /is a time: give ms or s/,
    );
    expect(usageError(() => parseThreshold('errors<5ms', 'steady')).message).toMatch(/is a count/);
    expect(usageError(() => parseThreshold('duplicates<1%', 'steady')).message).toMatch(
      /without a percentage/,
    );
    expect(usageError(() => parseThreshold('throughput>5ms', 'steady')).message).toMatch(/rate per second/);
    expect(usageError(() => parseThreshold('e2e.p99=<5ms', 'steady')).message).toMatch(/expected/);
    expect(usageError(() => parseThreshold('e2e.p99<-5ms', 'steady')).message).toMatch(/expected/);
    expect(usageError(() => parseThreshold('attacks.leaked==0', 'steady')).message).toMatch(
      /attacks\.leaked is measured only with --scenario attack/,
    );
    // the first bad one of several is named
    expect(usageError(() => parseThresholds(['lost==0', 'nope>1'], 'steady')).message).toMatch(/"nope>1"/);
  });

  it('has a latency metric for every percentile of connect, PUBACK and end to end', () => {
    for (const lat of ['connect', 'puback', 'e2e'])
      for (const stat of ['p50', 'p90', 'p99', 'p999', 'max', 'mean', 'min', 'count'])
        expect(THRESHOLD_METRICS.has(`${lat}.${stat}`)).toBe(true);
  });
});

describe('threshold evaluation', () => {
  it('compares in the unit given and says what it measured', () => {
    const rep = sampleReport();
    const p99 = rep.run.latency.e2e.p99;
    expect(check(`e2e.p99<${p99 + 1}ms`)).toMatchObject({ passed: true, measured: p99, unit: 'ms' });
    expect(check(`e2e.p99<${p99}ms`).passed).toBe(false);
    expect(check(`e2e.p99<=${p99}ms`).passed).toBe(true);
    const inSeconds = check('e2e.p99<1s');
    expect(inSeconds.measured).toBeCloseTo(p99 / 1000, 6);
    expect(inSeconds.measuredText).toMatch(/ s$/);
    // 10 errors of 1000 sent = 1 %
    expect(check('errors<1%')).toMatchObject({ passed: false, measured: 1 });
    expect(check('errors<=1%').passed).toBe(true);
    expect(check('errors<1%').measuredText).toBe('1 % (10 of sent 1000)');
    expect(check('errors==10').passed).toBe(true);
    // 2 lost of 990 acknowledged
    expect(check('lost==0')).toMatchObject({ passed: false, measured: 2 });
    expect(check('lost<1%').passed).toBe(true);
    // 1 held for an offline parent: measured, and not a lost clip
    expect(check('held==0')).toMatchObject({ passed: false, measured: 1 });
    expect(check('held<=1').passed).toBe(true);
    expect(check('delivered>=99.7%').passed).toBe(true);
    expect(check('throughput>200').passed).toBe(true);
    expect(check('storm.allBack<0.2s').passed).toBe(true);
    expect(check('storm.back>=100%').passed).toBe(true);
  });

  it('fails a threshold whose metric has no samples', () => {
    const rep = sampleReport();
    rep.run.latency.e2e = { ...rep.run.latency.e2e, count: 0 };
    const r = check('e2e.p99<1000ms', rep);
    expect(r).toMatchObject({ passed: false, measured: null, measuredText: 'not measured' });
  });
});

describe('run result and exit codes', () => {
  it('1 for a failed run (lost clips, leaked attacks, a failed worker), 3 for a failed threshold, else 0', () => {
    const rep = sampleReport();
    const held = [check('e2e.p99<1s', rep)];
    const broken = [check('errors<1%', rep)];
    // the fixture lost 2 clips: a failed run whatever the thresholds say
    expect(runResult(rep, held)).toMatchObject({ status: 'failed', exitCode: EXIT.failed });
    expect(runResult(rep, held).reasons[0]).toMatch(/2 acknowledged clip\(s\) never reached their parent/);
    rep.run.totals.lost = 0;
    expect(runResult(rep, held)).toEqual({ status: 'passed', exitCode: 0, reasons: [] });
    expect(runResult(rep, broken)).toMatchObject({ status: 'thresholds-failed', exitCode: 3 });
    expect(runResult(rep, broken).reasons).toEqual(['errors<1% (measured 1 % (10 of sent 1000))']);
    expect(runResult(rep, held, ['worker 1: out of memory'])).toMatchObject({ exitCode: 1 });
    rep.scenario.attack = {
      share: 0.2,
      byKind: {},
      attempted: 5,
      refused: 4,
      leaked: 1,
      inconclusive: 0,
      gatewayCounters: null,
    };
    expect(runResult(rep, broken).reasons).toEqual(['1 attack(s) leaked (accepted by the gateway)']);
  });

  it('the terminal summary and the HTML report list each threshold with its value and verdict', () => {
    const rep = sampleReport();
    rep.run.totals.lost = 0;
    rep.thresholds = [check('e2e.p99<1s', rep), check('errors<1%', rep)];
    rep.result = runResult(rep, rep.thresholds);
    const text = reportText(rep);
    expect(text).toMatch(/^e2e\.p99<1s\s+e2e p99 [\d.]+ s\s+pass$/m);
    expect(text).toMatch(/^errors<1%\s+clip errors 1 % \(10 of sent 1000\)\s+FAIL$/m);
    expect(text.trimEnd().split('\n').at(-1)).toBe(resultLine(rep));
    expect(resultLine(rep)).toBe(
      'result: 1 of 2 thresholds failed (exit 3): errors<1% (measured 1 % (10 of sent 1000))',
    );
    const html = renderHtml(rep);
    expect(html).toContain('<table class="thresholds">');
    expect(html).toMatch(/<tr class="pass"><th><code>e2e\.p99&#60;1s<\/code>/);
    expect(html).toMatch(
      /<tr class="fail"><th><code>errors&#60;1%<\/code><\/th><td class="l">clip errors<\/td><td>&#60; 1%<\/td><td>1 % \(10 of sent 1000\)<\/td><td class="verdict">✗ fail<\/td>/,
    );
    expect(html).toContain('<span class="badge thresholds-failed">thresholds failed</span>');
  });

  it('one word for an accepted attack: "leaked", in the terminal, the page and the JSON', () => {
    const rep = sampleReport();
    rep.scenario.attack = {
      share: 0.2,
      byKind: {
        'bad-signature': { attempted: 3, refused: 2, leaked: 1, inconclusive: 0, signals: { closed: 2 } },
      },
      attempted: 3,
      refused: 2,
      leaked: 1,
      inconclusive: 0,
      gatewayCounters: null,
    };
    const text = reportText(rep);
    const html = renderHtml(rep);
    expect(text).toMatch(/1 leaked/);
    expect(html).toMatch(/<b>1 leaked<\/b>/);
    expect(html).toContain('<th>leaked</th>');
    for (const s of [text, html]) {
      expect(s).not.toMatch(/LEAKED/);
      expect(s).not.toMatch(/\baccepted<\/|\d+ accepted\b/);
    }
    expect(JSON.parse(JSON.stringify(rep)).scenario.attack.leaked).toBe(1);
  });
});

describe('HTML report', () => {
  it('is self-contained and draws every chart from the data, with phases, the storm and hover values', () => {
    const html = renderHtml(sampleReport());
    expect(html).not.toMatch(/<script|<link|@import|url\(|https?:\/\/(?!www\.w3\.org\/2000\/svg)/i);
    for (const id of ['rate', 'latency', 'online', 'errors', 'histogram', 'cpu'])
      expect(html).toContain(`data-chart="${id}"`);
    expect(html).toContain('>storm: 8 toys dropped</text>');
    expect(html).toContain('>before-storm</text>');
    expect(html).toMatch(/data-series="offered"/);
    expect(html).toMatch(/data-series="puback-timeout"/);
    expect(html).toMatch(/data-series="not-sent:inflight-limit"/);
    expect(html).toContain(
      '<title>t = 4 s (after-storm)\noffered: 10 clips/s\nachieved (acknowledged): 10 clips/s',
    );
  });
});
