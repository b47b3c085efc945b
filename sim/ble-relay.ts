// Toys without Wi-Fi in a simulated fleet: each pairs over the modelled BLE link (numeric comparison) with a parent's phone, which relays its sealed clips unchanged to the gateway [PLK-4.5].
import { Air, type BleAddress, bleAddress } from '../device/ble/air.ts';
import type { ToyBleHandlers, ToyBleStatus } from '../device/ble/gatt.ts';
import type { PairingUi } from '../device/ble/pairing.ts';
import { BlePhone, type PhoneLink, PhoneRelay } from '../device/ble/phone.ts';
import { estimateTransfer, type LinkParams, linkParams } from '../device/ble/timing.ts';
import { BleToy } from '../device/ble/toy.ts';
import type { Connector, ConnectRequest, EndpointLink } from '../device/transport/wifi.ts';
import { seededRandom } from '../shared/random.ts';
import { clipTopic, relayTopic } from '../shared/topics.ts';
import type { EndpointId, RandomSource } from '../shared/types.ts';
import type { RosterFamily, RosterMember } from './roster.ts';

/**
 * The link after the phone's MTU exchange, Data Length Extension and PHY update: what a current
 * phone negotiates with a BLE 5 toy (docs/BLE.md). The connection interval stays at 30 ms.
 */
export const PHONE_LINK_PARAMS: LinkParams = linkParams({
  attMtu: 247,
  llDataLength: 251,
  phy: '2M',
  connectionIntervalMs: 30,
  maxPacketsPerEvent: 6,
});

/** A toy and a phone showed the same six digits and the user confirmed on both (or not). */
export interface BlePairingEvent {
  readonly toy: RosterMember;
  readonly phoneOwner: RosterMember;
  readonly digits: string;
  readonly ok: boolean;
}

/** One sealed clip downloaded from a toy over BLE and handed, unchanged, to the phone's MQTT link. */
export interface BleRelayEvent {
  readonly toy: RosterMember;
  readonly phoneOwner: RosterMember;
  /** Envelope bytes (the 4-byte length header of the download is not counted). */
  readonly bytes: number;
  /** Simulated time of the download: STOP_RECORDING write → last notification received, ms. */
  readonly airtimeMs: number;
  /** The timing model's expected time for the same transfer (estimateTransfer), ms. */
  readonly modelMs: number;
}

export interface BleFamilyEvents {
  pairing(e: BlePairingEvent): void;
  relayed(e: BleRelayEvent): void;
  /** A relay failed on the way (BLE or the phone's MQTT link): the toy's link was closed, so its Endpoint reconnects and resends. */
  linkLost(toy: RosterMember, error: Error): void;
}

/** The toy's firmware behind its GATT service: hands over the clip its Endpoint sealed. */
class RelayFirmware implements ToyBleHandlers {
  pending: Uint8Array | undefined;
  startRecording(): void {}
  stopRecording(): Uint8Array {
    const clip = this.pending;
    this.pending = undefined;
    if (!clip) throw new Error('nothing recorded');
    return clip;
  }
  playClip(): void {}
  getStatus(): ToyBleStatus {
    return { recording: false, batteryPercent: 100, clipsWaiting: 0 };
  }
}

/**
 * The person holding the phone next to the toy: both screens show six digits; they confirm on
 * both when the digits match (and refuse when they do not). One comparison per pairing.
 */
class Comparison {
  private phone: string | undefined;
  private toy: string | undefined;
  private readonly waiting: ((ok: boolean) => void)[] = [];
  constructor(private readonly onCompared: (digits: string, ok: boolean) => void) {}
  private side(which: 'phone' | 'toy'): PairingUi {
    return {
      confirmNumericComparison: (digits) =>
        new Promise<boolean>((resolve) => {
          if (which === 'phone') this.phone = digits;
          else this.toy = digits;
          this.waiting.push(resolve);
          if (this.phone !== undefined && this.toy !== undefined) {
            const ok = this.phone === this.toy;
            this.onCompared(this.phone, ok);
            for (const w of this.waiting.splice(0)) w(ok);
          }
        }),
    };
  }
  readonly phoneUi = this.side('phone');
  readonly toyUi = this.side('toy');
}

/** A PairingUi that asks whichever comparison is in progress (the phone and toy keep one UI each). */
class ComparisonUi implements PairingUi {
  current: PairingUi | undefined;
  confirmNumericComparison(digits: string): Promise<boolean> | boolean {
    return this.current ? this.current.confirmNumericComparison(digits) : false;
  }
}

interface ToyRadio {
  readonly member: RosterMember;
  readonly toy: BleToy;
  readonly firmware: RelayFirmware;
  readonly ui: ComparisonUi;
  bonded: boolean;
}

/** A deterministic BLE address from bytes of a seeded source (random static address: top bits 11). */
function addressFrom(random: RandomSource): BleAddress {
  const b = random(6);
  b[0] = b[0]! | 0xc0;
  return bleAddress([...b].map((x) => x.toString(16).padStart(2, '0')).join(':'));
}

/**
 * One family's radio world: its toys (BLE peripherals, no Wi-Fi) and the phone of its first parent
 * (a BLE central whose parent app is on Wi-Fi). The phone's parent app connects through
 * `phoneConnector`, and the MQTT link it opens is the relay's uplink, as one app on one phone
 * would share it. Each toy's Endpoint connects through `toyConnector(toy)`: no gateway
 * connection of its own, its clips go over the air to the phone and from there to the gateway on
 * the phone's relay topic, unchanged — the phone holds no key to open or re-sign them [PLK-4.5].
 */
export class BleFamily {
  readonly air: Air;
  readonly phoneOwner: RosterMember;
  private readonly phone: BlePhone;
  private readonly phoneUi = new ComparisonUi();
  private readonly radios = new Map<EndpointId, ToyRadio>();
  private uplink: EndpointLink | undefined;
  private uplinkWaiters: (() => void)[] = [];
  private pairingLock: Promise<void> = Promise.resolve();

  constructor(
    readonly family: RosterFamily,
    private readonly wifi: Connector,
    private readonly events: BleFamilyEvents,
    seed: string,
    readonly params: LinkParams = PHONE_LINK_PARAMS,
  ) {
    const owner = family.parents[0];
    if (!owner) throw new RangeError('a BLE family needs a parent whose phone relays');
    this.phoneOwner = owner;
    const random = seededRandom(`plushlink/ble/${seed}/${family.id}`);
    const b = random(4);
    this.air = new Air({ seed: ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0 });
    this.phone = new BlePhone({
      address: addressFrom(random),
      air: this.air,
      random: seededRandom(`plushlink/ble/${seed}/phone/${owner.identity.id}`),
      pairingUi: this.phoneUi,
    });
    for (const toy of family.toys) {
      const firmware = new RelayFirmware();
      const ui = new ComparisonUi();
      const toyRandom = seededRandom(`plushlink/ble/${seed}/toy/${toy.identity.id}`);
      this.radios.set(toy.identity.id, {
        member: toy,
        firmware,
        ui,
        bonded: false,
        toy: new BleToy({
          address: addressFrom(toyRandom),
          name: toy.name,
          handlers: firmware,
          pairingUi: ui,
          random: toyRandom,
          clock: this.air.clock,
        }),
      });
    }
  }

  /** The phone owner's parent app connects through this: Wi-Fi, and its link becomes the relay's uplink. */
  readonly phoneConnector: Connector = {
    connect: async (req: ConnectRequest): Promise<EndpointLink> => {
      const link = await this.wifi.connect(req);
      this.uplink = link;
      link.onClose(() => {
        if (this.uplink === link) this.uplink = undefined;
      });
      for (const w of this.uplinkWaiters.splice(0)) w();
      return link;
    },
  };

  /** The connector of one of this family's toys: pair (first time) or re-encrypt, then relay through the phone. */
  toyConnector(member: RosterMember): Connector {
    const radio = this.radios.get(member.identity.id);
    if (!radio) throw new RangeError(`${member.name} is not a toy of this family`);
    return { connect: (req) => this.connectToy(radio, req) };
  }

  /** Resolves once the phone's app is online (the phone is "in range" of the gateway). */
  private async phoneOnline(signal: AbortSignal | undefined): Promise<EndpointLink> {
    for (;;) {
      if (signal?.aborted) throw new Error('aborted');
      const up = this.uplink;
      if (up && !up.closed) return up;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          signal?.removeEventListener('abort', done);
          resolve();
        };
        this.uplinkWaiters.push(done);
        signal?.addEventListener('abort', done, { once: true });
      });
    }
  }

  private async connectToy(radio: ToyRadio, req: ConnectRequest): Promise<EndpointLink> {
    const uplink = await this.phoneOnline(req.signal);
    if (radio.bonded) return this.openLink(radio, uplink);
    // One pairing at a time on a phone: its user compares one pair of screens at a time.
    const before = this.pairingLock;
    let release = (): void => {};
    this.pairingLock = new Promise<void>((resolve) => {
      release = resolve;
    });
    await before;
    try {
      return await this.openLink(radio, uplink);
    } finally {
      release();
    }
  }

  private async openLink(radio: ToyRadio, uplink: EndpointLink): Promise<EndpointLink> {
    const link = this.phone.connect(radio.toy, this.params);
    try {
      if (!radio.bonded) {
        // The paw button opens the toy's pairing window; the user compares the digits on both screens.
        radio.toy.pressPairingButton();
        const cmp = new Comparison((digits, ok) =>
          this.events.pairing({ toy: radio.member, phoneOwner: this.phoneOwner, digits, ok }),
        );
        this.phoneUi.current = cmp.phoneUi;
        radio.ui.current = cmp.toyUi;
        const outcome = await link.pair();
        if (!outcome.ok) throw new Error(`BLE pairing failed (SMP reason 0x${outcome.reason.toString(16)})`);
        radio.bonded = true;
      } else await link.encrypt();
      await link.exchangeMtu(this.params.attMtu);
      await link.enableClipNotifications();
    } catch (err) {
      link.disconnect();
      throw err;
    }
    return new BleRelayLink(this, radio, link, uplink);
  }

  /** @internal */
  reportLinkLost(radio: ToyRadio, error: Error): void {
    this.events.linkLost(radio.member, error);
  }

  /** @internal */
  reportRelay(radio: ToyRadio, bytes: number, airtimeUs: number, params: LinkParams): void {
    const model = estimateTransfer(bytes + 4, params);
    this.events.relayed({
      toy: radio.member,
      phoneOwner: this.phoneOwner,
      bytes,
      airtimeMs: airtimeUs / 1000,
      modelMs: model.expectedUs / 1000,
    });
  }
}

/** The toy's EndpointLink over BLE: clips go to the phone, which publishes them on its relay topic. */
class BleRelayLink implements EndpointLink {
  /** No roster over BLE: the toy seals to the family it was provisioned with. */
  readonly sendsRoster = false;
  private closedFlag = false;
  private readonly closeHandlers: ((reason: Error | undefined) => void)[] = [];
  private readonly relay: PhoneRelay;
  private readonly ownClipTopic: string;
  private downloadedAtUs = 0;

  constructor(
    private readonly family: BleFamily,
    private readonly radio: ToyRadio,
    private readonly link: PhoneLink,
    uplink: EndpointLink,
    relayTo = relayTopic(family.phoneOwner.identity.id),
  ) {
    this.ownClipTopic = clipTopic(radio.member.identity.id);
    this.relay = new PhoneRelay((envelope) => {
      this.downloadedAtUs = family.air.nowUs;
      return uplink.publish(relayTo, envelope);
    });
    uplink.onClose(() => this.markClosed(new Error("the phone's connection to the gateway closed")));
    link.connection.onDisconnect((reason) =>
      this.markClosed(new Error(`BLE link lost (reason 0x${reason.toString(16)})`)),
    );
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** The toy "publishes" its sealed clip: the phone downloads it over the air and relays it (PUBACK = the gateway stored it). */
  async publish(topic: string, payload: Uint8Array): Promise<void> {
    if (this.closedFlag) throw new Error('connection closed');
    if (topic !== this.ownClipTopic) throw new Error(`only the toy's clips travel over BLE, not ${topic}`);
    const air = this.family.air;
    this.radio.firmware.pending = payload;
    let t0 = 0;
    let sent: Uint8Array;
    try {
      sent = await this.relay.recordAndRelay(this.link, async () => {
        t0 = air.nowUs; // recording stops now: the download starts with the STOP_RECORDING write
      });
    } catch (err) {
      // Like an MQTT link, a failed publish means a lost link: the Endpoint reconnects and resends.
      const error = err instanceof Error ? err : new Error(String(err));
      if (!this.closedFlag) this.family.reportLinkLost(this.radio, error);
      this.markClosed(error);
      throw error;
    }
    const airtimeUs = this.downloadedAtUs - t0;
    if (Buffer.compare(Buffer.from(sent), Buffer.from(payload)) !== 0)
      throw new Error('the phone relayed other bytes than the toy sent');
    this.family.reportRelay(this.radio, payload.length, airtimeUs, this.link.connection.params);
  }

  onMessage(): void {
    // No inbox over BLE: the gateway delivers only to an endpoint's own MQTT subscription.
  }

  onClose(handler: (reason: Error | undefined) => void): void {
    if (this.closedFlag) handler(undefined);
    else this.closeHandlers.push(handler);
  }

  private markClosed(reason: Error | undefined): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    if (this.link.connection.connected) this.link.disconnect();
    for (const h of this.closeHandlers.splice(0)) h(reason);
  }

  async close(): Promise<void> {
    this.markClosed(undefined);
  }

  destroy(): void {
    this.markClosed(new Error('BLE link dropped'));
  }
}
