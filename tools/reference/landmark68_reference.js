// Reference output of face-api.js's FaceLandmark68Net for a
// fixed synthetic 112x112 RGB input, computed with face-api.js 0.22.2 and its bundled
// @tensorflow/tfjs-core CPU backend. recog's test `landmark68_matches_face_api_js` compares
// against the numbers this prints.
//
//   cd tools/reference && npm install face-api.js@0.22.2 && \
//   node face_resnet_reference.js ../../../shared/models/face-api
const fs = require('fs');
const path = require('path');
const faceapi = require('face-api.js');
const tf = faceapi.tf;

async function main() {
  const dir = process.argv[2];
  const manifest = JSON.parse(
    fs.readFileSync(path.join(dir, 'face_landmark_68_model-weights_manifest.json')));
  const shards = manifest[0].paths.map((p) => fs.readFileSync(path.join(dir, p)));
  const buf = Buffer.concat(shards);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const map = tf.io.decodeWeights(ab, manifest[0].weights);
  const net = new faceapi.FaceLandmark68Net();
  net.loadFromWeightMap(map);

  // Same formula as the Rust test: pixel (y, x, c) = (7y + 13x + 29c) mod 256.
  const data = new Float32Array(112 * 112 * 3);
  for (let y = 0; y < 112; y++)
    for (let x = 0; x < 112; x++)
      for (let c = 0; c < 3; c++) data[(y * 112 + x) * 3 + c] = (7 * y + 13 * x + 29 * c) % 256;
  const input = tf.tensor4d(data, [1, 112, 112, 3]);
  const netInput = await faceapi.toNetInput(input);
  const out = net.runNet(netInput);
  const v = Array.from(await out.data());
  console.log(JSON.stringify(v.map((x) => Number(x.toPrecision(7)))));
}
main();
