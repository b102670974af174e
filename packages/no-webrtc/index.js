// btmount never opens WebRTC connections: its trackers are HTTP and UDP, its peers TCP.
// bittorrent-tracker imports simple-peer, which imports these names; this stand-in
// keeps the import working and fails clearly if anything ever tries to use them.
function unsupported() {
  throw new Error('WebRTC is not supported by btmount (HTTP and UDP trackers only)');
}
export class RTCPeerConnection {
  constructor() {
    unsupported();
  }
}
export class RTCSessionDescription {
  constructor() {
    unsupported();
  }
}
export class RTCIceCandidate {
  constructor() {
    unsupported();
  }
}
export default { RTCPeerConnection, RTCSessionDescription, RTCIceCandidate };
