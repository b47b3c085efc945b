// The parent page's entry point: wires ParentPage (logic) and VoiceRecorder to the static markup of index.html, writing every value as text (never HTML).
import { identityToJson } from '../../shared/identity.ts';
import type { EndpointId } from '../../shared/types.ts';
import { type ClipItem, type PageState, ParentPage, type ReplyItem } from './parent.ts';
import { MAX_REPLY_MS, recordingProblem, VoiceRecorder } from './recorder.ts';

function $(id: string): HTMLElement {
  const e = document.getElementById(id);
  if (!e) throw new Error(`index.html has no #${id}`);
  return e;
}

/** A new element with a class and text content: the only way text from the network reaches the page. */
function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

const FAMILY_ID = /^f[a-z2-7]{26}$/;

function familyFromLink(): string | undefined {
  const m = /(?:^#|&)family=([^&]*)/.exec(location.hash);
  const f = m ? decodeURIComponent(m[1]!) : undefined;
  return f && FAMILY_ID.test(f) ? f : undefined;
}

const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const day = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'short' });

function when(ms: number): string {
  const d = new Date(ms);
  const today = new Date();
  const yesterday = new Date(today.getTime() - 86_400_000);
  if (d.toDateString() === today.toDateString()) return `Today ${clock.format(d)}`;
  if (d.toDateString() === yesterday.toDateString()) return `Yesterday ${clock.format(d)}`;
  return `${day.format(d)} ${clock.format(d)}`;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const mmss = (ms: number): string => {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};

const STATUS_TEXT: Readonly<Record<PageState, string>> = {
  starting: 'Starting…',
  unregistered: 'Not registered yet',
  connecting: 'Connecting…',
  online: 'Online · verified',
  offline: 'Offline',
  failed: 'Stopped',
};

function main(): void {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const page = new ParentPage(`${scheme}://${location.host}/mqtt`);
  const status = $('status');
  const notice = $('notice');
  const setup = $('setup');
  const clipsList = $('clips');
  const empty = $('empty');
  const recordButton = $('record') as HTMLButtonElement;
  const recordLabel = $('record-label');
  const timer = $('timer');
  const level = $('level');
  const replies = $('replies');
  const members = $('members');
  const rows = new Map<string, HTMLLIElement>();
  const replyRows = new Map<string, HTMLLIElement>();
  const audioUrls = new Map<string, string>();
  let recorder: VoiceRecorder | undefined;
  let ticker: ReturnType<typeof setInterval> | undefined;

  const showNotice = (text: string | undefined) => {
    notice.hidden = !text;
    notice.textContent = text ?? '';
  };

  function updateRecordButton(): void {
    const problem = recordingProblem();
    const toys = page.toys();
    const online = page.state === 'online';
    recordButton.disabled = !recorder && (!online || toys.length === 0 || problem !== undefined);
    $('reply-title').textContent =
      toys.length > 0
        ? `Send a message to ${toys.map((t) => page.nameOf(t.id)).join(', ')}`
        : 'Send a message';
    $('reply-hint').textContent = problem
      ? `Recording is not possible here: ${problem}.`
      : toys.length === 0
        ? 'Once your family has a toy, you can record a message for it here.'
        : !online
          ? 'You can record as soon as the page is connected.'
          : 'Record a message: it is sealed for the toy in this browser, so nobody on the way can listen.';
  }

  function renderSetup(state: PageState): void {
    const keys = page.keys;
    setup.hidden = !(
      keys &&
      (state === 'unregistered' || (state !== 'online' && page.family().length === 0))
    );
    if (!keys || setup.hidden) return;
    $('setup-id').textContent = keys.identity.id;
    const family = familyFromLink();
    $('setup-command').textContent =
      `npx plushlink provision parent --public ${page.identityCode()}${family ? ` --family ${family}` : ' --family FAMILY-ID'}`;
    $('setup-hint').textContent =
      state === 'unregistered'
        ? 'Not registered yet: this page checks again every few seconds and connects by itself.'
        : 'This page connects by itself as soon as it is registered.';
  }

  page.on('state', ({ state, detail }) => {
    status.textContent = STATUS_TEXT[state];
    status.className = `pill pill-${state}`;
    status.title = detail;
    showNotice(state === 'failed' || state === 'offline' ? detail : undefined);
    if (page.keys) $('my-id').textContent = page.keys.identity.id;
    if (page.gateway) $('gateway-id').textContent = page.gateway.id;
    renderSetup(state);
    updateRecordButton();
  });

  /** A toy's clip shows the bear, another parent's an initial, a refused one an exclamation mark. */
  function avatarOf(item: ClipItem): HTMLElement {
    const box = el('div', 'avatar');
    if (item.error) box.textContent = '!';
    else if (page.family().find((m) => m.id === item.sender)?.role === 'parent') box.textContent = 'P';
    else {
      const img = el('img');
      img.src = '/icon.svg';
      img.alt = '';
      img.width = 34;
      img.height = 34;
      box.append(img);
    }
    return box;
  }

  function renderClip(item: ClipItem): void {
    let li = rows.get(item.key);
    const fresh = !li;
    if (!li) {
      li = el('li', 'clip');
      rows.set(item.key, li);
    }
    li.replaceChildren();
    li.dataset.key = item.key;
    li.dataset.sender = item.sender;
    li.dataset.durationMs = String(item.durationMs);
    li.classList.toggle('bad', item.error !== undefined);
    li.append(avatarOf(item));
    const head = el('div', 'clip-head');
    head.append(el('span', 'clip-name', item.sender ? page.nameOf(item.sender) : 'Unknown sender'));
    head.append(el('span', 'clip-meta', when(item.createdAt)));
    if (!item.error) head.append(el('span', 'clip-meta clip-duration', seconds(item.durationMs)));
    if (item.title) head.append(el('span', 'clip-title', `“${item.title}”`));
    li.append(head);
    if (item.error || !item.ogg) {
      li.append(el('div', 'clip-error', item.error ?? 'This message cannot be played.'));
    } else {
      let url = audioUrls.get(item.key);
      if (!url) {
        url = URL.createObjectURL(
          new Blob([item.ogg as Uint8Array<ArrayBuffer>], { type: 'audio/ogg; codecs=opus' }),
        );
        audioUrls.set(item.key, url);
      }
      const audio = el('audio');
      audio.controls = true;
      audio.preload = 'metadata';
      audio.src = url;
      li.append(audio);
    }
    const actions = el('div', 'clip-actions');
    const del = el('button', 'link', 'Delete');
    del.type = 'button';
    del.addEventListener('click', () => {
      void page.remove(item.key);
      li.remove();
      rows.delete(item.key);
      const u = audioUrls.get(item.key);
      if (u) URL.revokeObjectURL(u);
      audioUrls.delete(item.key);
      empty.hidden = rows.size > 0;
    });
    actions.append(del);
    li.append(actions);
    if (fresh) clipsList.prepend(li);
    empty.hidden = rows.size > 0;
  }
  page.on('clip', renderClip);

  function renderMembers(): void {
    members.replaceChildren();
    const fam = page.family();
    if (fam.length === 0) {
      members.append(
        el('li', 'hint', 'Nobody yet: the gateway sends the family list once this browser is registered.'),
      );
      return;
    }
    const mine = page.keys?.identity.id;
    // This browser first, then the toys, then the other parents.
    const rank = (id: EndpointId, role: string) => (id === mine ? 0 : role === 'toy' ? 1 : 2);
    for (const m of [...fam].sort((a, b) => rank(a.id, a.role) - rank(b.id, b.role))) {
      const li = el('li');
      const me = m.id === mine;
      li.append(el('span', 'member-role', m.role === 'toy' ? 'toy' : 'parent'));
      li.append(el('span', 'member-name', me ? 'You (this browser)' : page.nameOf(m.id)));
      li.append(el('code', 'id', `${m.id.slice(0, 12)}…`));
      if (m.role === 'toy') li.append(renameControl(m.id));
      members.append(li);
    }
  }

  function renameControl(id: EndpointId): HTMLElement {
    const wrap = el('span', 'rename');
    const button = el('button', 'link', 'Rename');
    button.type = 'button';
    button.addEventListener('click', () => {
      const input = el('input');
      input.type = 'text';
      input.maxLength = 40;
      input.value = page.nameOf(id);
      input.setAttribute('aria-label', 'Name of the toy');
      const save = el('button', 'secondary', 'Save');
      save.type = 'button';
      const done = () => void page.rename(id, input.value);
      save.addEventListener('click', done);
      input.addEventListener('keydown', (e) => {
        if (e.key === 'Enter') done();
      });
      wrap.replaceChildren(input, save);
      input.focus();
    });
    wrap.append(button);
    return wrap;
  }

  page.on('roster', () => {
    renderMembers();
    for (const id of rows.keys()) {
      const [sender] = id.split(':');
      const row = rows.get(id);
      const name = row?.querySelector('.clip-name');
      if (name && sender) name.textContent = page.nameOf(sender as EndpointId);
    }
    for (const r of replyItems.values()) renderReply(r);
    renderSetup(page.state);
    updateRecordButton();
  });

  const REPLY_TEXT: Readonly<Record<ReplyItem['status'], string>> = {
    sending: 'sending…',
    stored: 'stored by the gateway, waiting for the toy',
    delivered: 'delivered ✓',
    undeliverable: 'the toy could not open it',
    failed: 'not sent',
  };

  const replyItems = new Map<string, ReplyItem>();
  function renderReply(r: ReplyItem): void {
    replyItems.set(r.clipId, r);
    let li = replyRows.get(r.clipId);
    if (!li) {
      li = el('li');
      replyRows.set(r.clipId, li);
      replies.prepend(li);
    }
    li.dataset.clipId = r.clipId;
    li.dataset.status = r.status;
    const to = r.to.map((id) => page.nameOf(id)).join(', ');
    li.replaceChildren(
      el('span', '', `You → ${to} · ${when(r.createdAt)} · ${seconds(r.durationMs)} · `),
      el(
        'span',
        `reply-status ${r.status}`,
        r.status === 'failed' && r.error ? `not sent: ${r.error}` : REPLY_TEXT[r.status],
      ),
    );
  }
  page.on('reply', renderReply);

  async function stopAndSend(): Promise<void> {
    const rec = recorder;
    if (!rec) return;
    recorder = undefined;
    if (ticker) clearInterval(ticker);
    recordButton.classList.remove('recording');
    recordLabel.textContent = 'Record';
    level.style.width = '0';
    recordButton.disabled = true;
    try {
      const recording = await rec.stop();
      await page.sendReply(recording);
      showNotice(undefined);
    } catch (err) {
      showNotice(err instanceof Error ? err.message : String(err));
    } finally {
      updateRecordButton();
    }
  }

  recordButton.addEventListener('click', () => {
    if (recorder) {
      void stopAndSend();
      return;
    }
    const rec = new VoiceRecorder();
    rec.onLevel = (v) => {
      level.style.width = `${Math.round(Math.min(1, v * 1.5) * 100)}%`;
    };
    recorder = rec;
    recordButton.classList.add('recording');
    recordLabel.textContent = 'Stop and send';
    timer.textContent = '0:00';
    rec.start().then(
      () => {
        ticker = setInterval(() => {
          timer.textContent = mmss(rec.elapsedMs);
          if (rec.full || rec.elapsedMs >= MAX_REPLY_MS) void stopAndSend();
        }, 200);
      },
      (err: unknown) => {
        rec.cancel();
        recorder = undefined;
        recordButton.classList.remove('recording');
        recordLabel.textContent = 'Record';
        showNotice(err instanceof Error ? err.message : String(err));
        updateRecordButton();
      },
    );
  });

  $('retry').addEventListener('click', () => page.retryNow());
  $('download-identity').addEventListener('click', () => {
    const keys = page.keys;
    if (!keys) return;
    // The public identity file [PLK-1.4]: `plushlink provision parent --public FILE` takes it too.
    const a = el('a');
    a.href = URL.createObjectURL(new Blob([identityToJson(keys.identity)], { type: 'application/json' }));
    a.download = `plushlink-parent-${keys.identity.id.slice(0, 8)}.json`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  });
  $('copy-command').addEventListener('click', () => {
    const text = $('setup-command').textContent ?? '';
    navigator.clipboard?.writeText(text).then(
      () => {
        $('copy-command').textContent = 'Copied';
      },
      () => undefined,
    );
  });
  $('reset').addEventListener('click', () => {
    if (
      !confirm(
        'Forget this browser’s key and all messages? The gateway will have to register this browser again.',
      )
    )
      return;
    void page.reset().then(() => location.reload());
  });

  renderMembers();
  void page.start();
}

main();
