// Pays a Coinslot route knowing only the "Payment" HTTP authentication scheme, with mppx
// (the scheme's TypeScript SDK) reading the 402 and writing the credential:
//   node pay.mjs <url of a paid route> <cashuB token worth the price>
// Prints the parsed challenge and the receipt, then "mppx flow ok".
import { Challenge, Credential, Receipt } from 'mppx'

const [url, token] = process.argv.slice(2)
if (!url || !token) throw new Error('usage: node pay.mjs URL TOKEN')

const asked = await fetch(url)
if (asked.status !== 402) throw new Error(`expected 402, got ${asked.status}`)
if (asked.headers.get('cache-control') !== 'no-store') throw new Error('402 without Cache-Control: no-store')
// mppx's own parser: it rejects a challenge that is not well-formed.
const challenges = Challenge.fromResponseList(asked)
const challenge = challenges.find((c) => c.method === 'cashu' && c.intent === 'charge')
if (!challenge) throw new Error(`no cashu charge among ${JSON.stringify(challenges)}`)
const { amount, currency, methodDetails } = challenge.request
if (!/^[1-9][0-9]*$/.test(amount)) throw new Error(`amount ${amount}`)
if (!methodDetails.request.startsWith('creqA')) throw new Error('no creqA in methodDetails')
console.log(`challenge: ${amount} ${currency} at ${methodDetails.mints.join(', ')}, expires ${challenge.expires}`)

const authorization = Credential.serialize({ challenge, payload: { cashu_token: token } })
const paid = await fetch(url, { headers: { Authorization: authorization } })
if (paid.status !== 200) throw new Error(`paying: ${paid.status} ${await paid.text()}`)
const receipt = Receipt.fromResponse(paid)
if (receipt.status !== 'success' || receipt.method !== 'cashu') throw new Error(JSON.stringify(receipt))
console.log(`receipt: ${JSON.stringify(receipt)}`)
console.log(`body: ${await paid.text()}`)
console.log('mppx flow ok')
