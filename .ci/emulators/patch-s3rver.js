#!/usr/bin/env node
// Patches s3rver 3.7.1 (run by `npm ci` as this package's postinstall; idempotent) so that the S3 driver's contract
// tests can run against it. The driver itself depends on none of this: each change makes the emulator do what S3 does.
//
// 1. CopyObject: s3rver decodes x-amz-copy-source with decodeURI, so the SDK's "bucket%2Fkey" is not found (404);
//    S3 URL-decodes the whole value: decodeURIComponent.
// 2. Conditional writes: s3rver ignores If-None-Match / If-Match on PUT and If-Match on DELETE. Here PUT Object,
//    DELETE Object, PUT Copy and Complete Multipart Upload check them (412 PreconditionFailed; If-Match on a missing
//    key: 404 NoSuchKey), under a per-key lock, so that of two racing conditional writes exactly one wins, as on S3.
// 3. Atomic replacement: s3rver writes objects in place (a reader can see a half-written object, or the new bytes with
//    the old length). Here an object is written to a temporary file and renamed over the old one, and GET/HEAD open
//    the object under the same per-key lock as the writers, so a reader gets the old object or the new one, whole.
// 4. Listing with a delimiter: s3rver does not descend into folders two levels below the prefix, so a key like
//    prefix/a/b/c alone never yields the common prefix "prefix/a/"; S3 does. The shortcut is removed.
'use strict';
const fs = require('fs');
const path = require('path');

const MARKER = '// --- shadowregistry patch ---';
const lib = path.join(__dirname, 'node_modules', 's3rver', 'lib');
if (!fs.existsSync(lib)) {
  console.log('patch-s3rver: s3rver not installed, nothing to patch');
  process.exit(0);
}
const version = require(path.join(__dirname, 'node_modules', 's3rver', 'package.json')).version;
if (version !== '3.7.1') throw new Error(`patch-s3rver: written for s3rver 3.7.1, found ${version}`);

function patch(file, edit) {
  const full = path.join(lib, file);
  const source = fs.readFileSync(full, 'utf8');
  if (source.includes(MARKER)) return;
  fs.writeFileSync(full, edit(source));
  console.log(`patch-s3rver: patched ${file}`);
}

patch('controllers/object.js', source => {
  const from = "decodeURI(ctx.headers['x-amz-copy-source'])";
  if (!source.includes(from)) throw new Error('patch-s3rver: copy-source decoding not found');
  return source.replace(from, "decodeURIComponent(ctx.headers['x-amz-copy-source'])") + `
${MARKER}
const srLocks = new Map();
async function srWithLock(key, action) {
  const previous = srLocks.get(key) || Promise.resolve();
  let release;
  const mine = new Promise(resolve => (release = resolve));
  const tail = previous.then(() => mine);
  srLocks.set(key, tail);
  await previous;
  try {
    return await action();
  } finally {
    release();
    if (srLocks.get(key) === tail) srLocks.delete(key);
  }
}
async function srCheckConditions(ctx) {
  const ifNoneMatch = ctx.headers['if-none-match'];
  const ifMatch = ctx.headers['if-match'];
  if (!ifNoneMatch && !ifMatch) return;
  let etag = null;
  try {
    etag = JSON.parse((await ctx.store.getMetadata(ctx.params.bucket, ctx.params.key)).etag);
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  const failed = header => new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { Condition: header });
  if (ifNoneMatch === '*' && etag !== null) throw failed('If-None-Match');
  if (ifMatch) {
    if (etag === null) throw new S3Error('NoSuchKey', 'The specified key does not exist.', { Key: ctx.params.key });
    if (ifMatch !== '*' && ifMatch.replace(/"/g, '') !== etag) throw failed('If-Match');
  }
}
for (const name of ['putObject', 'deleteObject', 'putObjectCopy', 'completeMultipartUpload', 'getObject']) {
  const original = exports[name];
  exports[name] = ctx => srWithLock(ctx.params.bucket + '/' + ctx.params.key, async () => {
    if (name !== 'getObject') await srCheckConditions(ctx);
    return original(ctx);
  });
}
`;
});

patch('stores/filesystem.js', source => {
  const shortcut = 'dirPath.slice(prefixPath.length).indexOf(delimiterEnc) !== -1';
  if (!source.includes(shortcut)) throw new Error('patch-s3rver: listing shortcut not found');
  return source.replace(shortcut, 'false /* patched: descend to find every common prefix */') + `
${MARKER}
FilesystemStore.prototype.putObject = async function putObject(object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  await fs.mkdirp(path.dirname(objectPath));
  const temporary = objectPath + '.' + crypto.randomBytes(8).toString('hex') + '.tmp';
  const md5Context = crypto.createHash('md5');
  let size = 0;
  await new Promise((resolve, reject) => {
    const writeStream = fs.createWriteStream(temporary).on('error', reject).on('finish', resolve);
    if (Buffer.isBuffer(object.content)) {
      md5Context.update(object.content);
      size = object.content.length;
      writeStream.end(object.content);
    } else {
      object.content
        .on('error', reject)
        .pipe(new Transform({
          transform(chunk, encoding, callback) {
            md5Context.update(chunk, encoding);
            size += chunk.length;
            callback(null, chunk);
          },
        }))
        .pipe(writeStream);
    }
  });
  const md5 = md5Context.digest('hex');
  await fs.rename(temporary, objectPath);
  await this.putMetadata(object.bucket, object.key, object.metadata, md5);
  return { size, md5 };
};
FilesystemStore.prototype.copyObject = async function copyObject(srcBucket, srcKey, destBucket, destKey, replacementMetadata) {
  const srcObjectPath = this.getResourcePath(srcBucket, srcKey, 'object');
  const destObjectPath = this.getResourcePath(destBucket, destKey, 'object');
  const md5 = JSON.parse((await this.getMetadata(srcBucket, srcKey)).etag);
  let metadata = replacementMetadata;
  if (!metadata) {
    metadata = await fs.readFile(this.getResourcePath(srcBucket, srcKey, 'metadata.json')).then(JSON.parse).catch(() => ({}));
  }
  if (srcObjectPath !== destObjectPath) {
    await fs.mkdirp(path.dirname(destObjectPath));
    const temporary = destObjectPath + '.' + crypto.randomBytes(8).toString('hex') + '.tmp';
    await fs.copy(srcObjectPath, temporary);
    await fs.rename(temporary, destObjectPath);
  }
  await this.putMetadata(destBucket, destKey, metadata, md5);
  return this.getMetadata(destBucket, destKey);
};
`;
});
