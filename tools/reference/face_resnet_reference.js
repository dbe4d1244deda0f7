// Reference output of face-api.js's FaceRecognitionNet (the JS port of dlib's ResNet) for a
// fixed synthetic 150x150 RGB input, computed with face-api.js 0.22.2 and its bundled
// @tensorflow/tfjs-core CPU backend. recog's test `face_resnet_matches_face_api_js` compares
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
    fs.readFileSync(path.join(dir, 'face_recognition_model-weights_manifest.json')));
  const shards = manifest[0].paths.map((p) => fs.readFileSync(path.join(dir, p)));
  const buf = Buffer.concat(shards);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const map = tf.io.decodeWeights(ab, manifest[0].weights);
  const net = new faceapi.FaceRecognitionNet();
  net.loadFromWeightMap(map);

  // Same formula as the Rust test: pixel (y, x, c) = (7y + 13x + 29c) mod 256.
  const data = new Float32Array(150 * 150 * 3);
  for (let y = 0; y < 150; y++)
    for (let x = 0; x < 150; x++)
      for (let c = 0; c < 3; c++) data[(y * 150 + x) * 3 + c] = (7 * y + 13 * x + 29 * c) % 256;
  const input = tf.tensor4d(data, [1, 150, 150, 3]);
  const netInput = await faceapi.toNetInput(input);
  const out = net.forwardInput(netInput);
  const v = Array.from(await out.data());
  console.log(JSON.stringify(v.map((x) => Number(x.toPrecision(7)))));
}
main();
