// The edge Worker's `main` (wrangler.edge.toml): the thin entry (js/front.mjs) in front of the edge
// build (build-edge/, feature edge only). It has no Durable Objects.
import Gatehouse from '../build-edge/index.js';
import { front } from './front.mjs';

export default front(Gatehouse);
