// The all-in-one Worker's `main` (wrangler.toml): the thin entry (js/front.mjs) in front of the
// all-in-one build (build/, features edge + issuer), and its Durable Objects.
import Gatehouse from '../build/index.js';
import { front } from './front.mjs';

export { Account, KeyStore } from '../build/index.js';
export default front(Gatehouse);
