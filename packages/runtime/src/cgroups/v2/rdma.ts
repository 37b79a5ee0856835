// rdma (v2): rdma.max, the same file and format as v1 (v1/rdma.ts).
export { rdma as rdmaV2 } from "../v1/rdma.ts";
