// parley: admin.
"use strict";
