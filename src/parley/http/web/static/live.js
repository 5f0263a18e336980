// parley: live.
"use strict";
