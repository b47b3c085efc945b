// Loads every protocol version module the lab knows (each registers itself); a new version adds its import here.
import './protocol-v1.ts';
import './protocol-v2.ts';

export { protocolModule, registeredVersions } from './protocol.ts';
